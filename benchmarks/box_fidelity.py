"""Box fidelity: are generated defects where the boxes say? SAE and EBR for --cond basd, boxmask, none.

Trains a small model on toy data for a fixed time budget per conditioning mode, samples the boxes of
the toy test split, writes previews (``<out>/previews/<mode>/synthetic.png`` beside ``real.png``, the
same test conditions), and prints SAE (synthetic pixels outside the boxes) and EBR (boxes left empty),
from ``defectsynth metrics``. The BASD paper (Table 1) finds BASD better aligned than the
baselines; here BASD should beat the unconditional model clearly and match or beat boxmask.

The unconditional model knows no boxes: its i-th sample is paired with the i-th test condition
(its boxes file and provenance are rewritten), which is the alignment one gets by chance.

    python benchmarks/box_fidelity.py [--budget-seconds 200] [--images 240] [--size 32] [--seed 0] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _results import add_json_option, write_results

import defectsynth
from defectsynth.data import Dataset
from defectsynth.data.files import read_json, write_json
from defectsynth.toy_demo import write_previews

MODES = ("basd", "boxmask", "none")


def steps_for_budget(data: Path, out: Path, budget: float, options: dict) -> int:
    """Time a short run (6 steps) and scale it to the budget."""
    defectsynth.train(data, out=out, max_steps=6, **options)
    trainer = json.loads((out / "checkpoint-6" / "trainer.json").read_text())  # "seconds": time in training steps
    per_step = trainer["seconds"] / 6
    return max(10, int(budget / per_step))


def pair_with_conditions(synthetic: Path, conditions: Path, split: str) -> None:
    """Give the i-th unconditional sample the boxes of the i-th condition (for SAE/EBR)."""
    cond = Dataset(conditions)
    stems = cond.split(split)
    manifest = read_json(synthetic / "dataset.json")
    samples = sorted(p.stem for p in (synthetic / "images").glob("*.png"))
    condition_of = {}
    for sample, stem in zip(samples, stems):
        write_json(synthetic / "boxes" / f"{sample}.json", [b.to_json() for b in cond.read_boxes(stem)])
        condition_of[sample] = stem
    manifest["source"]["condition_of"] = condition_of
    manifest["source"]["conditions"] = {"dataset": str(conditions.resolve()), "split": split, "paired_by": "index"}
    write_json(synthetic / "dataset.json", manifest)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-seconds", type=float, default=200.0, help="Training time per conditioning mode.")
    parser.add_argument("--images", type=int, default=240)
    parser.add_argument("--size", default="32")
    parser.add_argument("--model", default="small")
    parser.add_argument("--steps", type=int, default=50, help="DDIM sampling steps.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the toy data, the training runs and the sampling.")
    parser.add_argument("--out", type=Path, default=Path("box-fidelity"))
    add_json_option(parser)
    a = parser.parse_args()
    data = a.out / "data"
    if not data.exists():
        defectsynth.prepare("toy", data, num=a.images, size=a.size, seed=a.seed)
    options = dict(
        target="joint",
        model=a.model,
        batch_size=16,
        lr=5e-4,
        epochs=10**6,
        checkpoint_every=10**9,
        preview_every=0,
        split="train",
        seed=a.seed,
    )
    rows = {}
    for mode in MODES:
        steps = steps_for_budget(data, a.out / f"calibrate-{mode}", a.budget_seconds, dict(options, cond=mode))
        started = time.perf_counter()
        run = defectsynth.train(data, out=a.out / f"run-{mode}", cond=mode, max_steps=steps, **options)
        trained = time.perf_counter() - started
        synthetic = a.out / f"synthetic-{mode}"
        num = len(Dataset(data).split("test"))
        conditions = None if mode == "none" else f"{data}:test"
        defectsynth.sample(
            run, out=synthetic, conditions=conditions, num=num, scheduler="ddim", steps=a.steps, seed=a.seed
        )
        if mode == "none":
            pair_with_conditions(synthetic, data, "test")
        write_previews(data, synthetic, a.out / "previews" / mode)
        rows[mode] = {"steps": steps, "train_seconds": round(trained, 1), "synthetic": str(synthetic)}
    try:
        from defectsynth.metrics import compute_metrics
    except ImportError:
        compute_metrics = None
    print(
        f"toy {a.images} images at {a.size}px, seed {a.seed}, model {a.model}, budget {a.budget_seconds:.0f} s "
        f"per mode, DDIM {a.steps} steps"
    )
    for mode, row in rows.items():
        line = f"{mode:>8}: {row['steps']:5d} steps in {row['train_seconds']:6.1f} s"
        if compute_metrics is not None:
            m = compute_metrics(["sae", "ebr"], synthetic=row["synthetic"])
            line += f"  SAE {m['sae']['all']:.4f}  EBR {m['ebr']['all']:.4f}"
            row.update(sae=m["sae"]["all"], ebr=m["ebr"]["all"])
        else:
            line += "  (SAE/EBR: defectsynth.metrics is not available in this checkout)"
        print(line)
    write_results(
        a.json,
        {
            "images": a.images,
            "size": a.size,
            "model": a.model,
            "budget_seconds": a.budget_seconds,
            "ddim_steps": a.steps,
            "modes": rows,
        },
    )


if __name__ == "__main__":
    main()
