"""The demo pipeline from Python (what ``defectsynth demo`` runs): toy data -> box-guided joint model ->
samples for the train boxes -> SAE/EBR -> filter -> balancing plan -> evaluate.

Same steps as examples/cli/demo.sh.  Run: python examples/api/demo.py [OUT]
"""

import sys
from pathlib import Path

import defectsynth
from defectsynth.metrics import compute_metrics

out = Path(sys.argv[1] if len(sys.argv) > 1 else "demo-api")
defectsynth.prepare("toy", out / "data", num=240, size="32")
run = defectsynth.train(
    out / "data",
    out=out / "run",
    cond="basd",
    target="joint",
    model="tiny",
    prediction="v",
    batch_size=16,
    lr=2e-3,
    max_steps=2000,
    checkpoint_every=1000,
    preview_every=20,
    progress=True,
)
defectsynth.sample(
    run, out=out / "synthetic", conditions=f"{out / 'data'}:train", scheduler="ddim", steps=50, progress=True
)
metrics = compute_metrics(["sae", "ebr"], synthetic=out / "synthetic")
print("SAE", metrics["sae"]["all"], "EBR", metrics["ebr"]["all"])
defectsynth.filter_dataset(out / "synthetic", out / "filtered", by="boxes", clip_labels=True)
plan = defectsynth.balance(out / "data", plan_out=out / "plan.json", split="train")
print(f"balance plan: {plan.generations} generations")
report = defectsynth.evaluate(
    out / "data",
    out / "evaluate",
    synthetic=[out / "filtered"],
    models=["unet"],
    encoder="resnet18",
    encoder_weights=None,
    loss="dice+ce",
    size="32",
    budget="steps",
    epochs=15,
    batch_size=16,
    lr=1e-3,
    repeats=2,
    mix=["R=all,S=0", "R=all,S=R"],
)
print(report["budget"])
for row in report["rows"]:
    print(row["mix"], f"{row['miou_mean']:.3f} ± {row['miou_std']:.3f}")
