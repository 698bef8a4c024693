"""Class balancing from Python; same pipeline as examples/cli/balance.sh.

A plan with Algorithm 1 of the VOC paper, then merging real data with a stand-in synthetic folder
(other toy pictures under stems of their own), all of it or only what brings the classes closest
to balance.
"""

from __future__ import annotations

import os
from pathlib import Path

from defectsynth import Dataset, DatasetWriter, prepare
from defectsynth.balancing import merge_datasets, plan_balance, read_plan

out = Path(os.environ.get("OUT", "out/examples"))
prepare("toy", out / "toy", num=60, size=64, overwrite=True)

plan = plan_balance(out / "toy", "auto", out / "plan.json")
before, after = plan.distribution()["before"], plan.distribution()["after"]
print(
    f"n_balance {plan.n_balance}: {plan.generations} generations; CIR {before['cir']['all']:.3f} -> "
    f"{after['cir']['all']:.3f}"
)
print(read_plan(out / "plan.json")[:3])
plan_balance(out / "toy", 40, out / "plan-40.json")

# stand-in synthetic folder (`sample` writes stems <condition>-<k>, which never clash)
prepare("toy", out / "toy-seed1", num=60, size=64, seed=1, overwrite=True)
seed1 = Dataset(out / "toy-seed1")
with DatasetWriter(out / "standin", seed1.manifest, overwrite=True) as writer:
    for stem in seed1.stems:
        sample = seed1.read(stem)
        sample.stem = f"syn-{stem}"
        writer.add(sample)
    writer.commit()

everything = merge_datasets(out / "toy", out / "standin", out / "toy+standin", overwrite=True)
balanced = merge_datasets(out / "toy", out / "standin", out / "toy+balanced", n_balance="auto", overwrite=True)
for name, merged in (("all", everything), ("balanced", balanced)):
    report = merged.distribution()
    print(
        f"{name}: {len(merged.selected)} synthetic, CIR {report['before']['cir']['all']:.3f} -> "
        f"{report['after']['cir']['all']:.3f}, short {merged.short}"
    )
