"""Sampling quality per cost: SAE, EBR and mask IoU of ONE trained toy model against sampler and steps.

Trains ``train --cond basd --target joint`` once on toy data with the default recipe (x_0
prediction, self-conditioning, mask loss weight 4; batch 16, lr 5e-4), then samples the boxes of the
first ``--num`` test images with every setting of ``--settings`` (``defectsynth sample``, EMA
weights, seed 0) and scores each synthetic dataset:

- SAE / EBR: ``defectsynth metrics sae ebr`` (defect pixels outside their boxes / boxes left empty);
- IoU: the generated masks against the real test masks of the same boxes (defect classes, micro);
  the boxes fix where the defects are, not their exact shape, so this is a loose upper-bound check;
- wall and process CPU seconds of the sampling call.

    python benchmarks/sampler_quality.py [--train-steps 400] [--num 24] [--settings ddpm:1000,ddpm:300,...] [--out DIR]
    python benchmarks/sampler_quality.py --run runs/toy     # score a run trained before (its dataset's test split)

A setting is ``NAME:STEPS`` with NAME ddpm | ddim | dpm, or ``ddpm:STEPS:rescale`` for ISDM's
rescaled schedule.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _results import add_json_option, write_results

import defectsynth
from defectsynth.data import Dataset
from defectsynth.metrics import compute_metrics
from defectsynth.metrics.segmentation import get_stats, reduce_stats

SETTINGS = "ddpm:1000,ddpm:300,ddpm:300:rescale,ddim:50,dpm:25,dpm:10"
TRAIN = dict(
    cond="basd",
    target="joint",
    batch_size=16,
    lr=5e-4,
    epochs=10**6,
    checkpoint_every=10**9,
    preview_every=0,
    split="train",
)


def parse_setting(text: str) -> tuple[str, int, bool]:
    parts = text.split(":")
    return parts[0], int(parts[1]), len(parts) > 2 and parts[2] == "rescale"


def mask_iou(synthetic: Path, real: Path) -> float:
    """Micro IoU of the defect classes between each synthetic mask and the real mask of its condition."""
    syn, ref = Dataset(synthetic), Dataset(real)
    condition_of = syn.manifest.source["condition_of"]
    stems = syn.stems
    pred = torch.from_numpy(np.stack([syn.read(s).mask for s in stems]))
    target = torch.from_numpy(np.stack([ref.read(condition_of[s]).mask for s in stems]))
    num_classes = ref.manifest.num_classes
    return reduce_stats(*get_stats(pred, target, num_classes), classes=range(1, num_classes))["iou"]["micro"]


def _f(value: float | None) -> str:
    return "   n/a" if value is None else f"{value:6.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-steps", type=int, default=400)
    parser.add_argument("--images", type=int, default=240, help="Toy images (train/val/test split).")
    parser.add_argument("--size", default="32")
    parser.add_argument("--model", default="small")
    parser.add_argument("--num", type=int, default=None, help="Test images to sample (default: the whole test split).")
    parser.add_argument("--settings", default=SETTINGS)
    parser.add_argument("--out", type=Path, help="Work folder (default: a temp folder).")
    parser.add_argument(
        "--run", type=Path, help="Score this trained run (on its dataset's test split) instead of training one."
    )
    add_json_option(parser)
    a = parser.parse_args()
    work = a.out or Path(tempfile.mkdtemp(prefix="sampler_quality_"))
    if a.run is None:
        data = work / "data"
        if not data.exists():
            defectsynth.prepare("toy", data, num=a.images, size=a.size, seed=0)
        started, cpu = time.perf_counter(), time.process_time()
        run = defectsynth.train(
            data, out=work / "run", model=a.model, max_steps=a.train_steps, resume=(work / "run").exists(), **TRAIN
        )
        trained = {
            "steps": a.train_steps,
            "seconds": time.perf_counter() - started,
            "cpu_seconds": time.process_time() - cpu,
        }
    else:
        run, info = a.run, json.loads((a.run / "run.json").read_text())
        data, a.model, a.size = Path(info["dataset"]["path"]), info["args"]["model"], "x".join(map(str, info["size"]))
        last = max(int(p.name.split("-")[1]) for p in run.glob("checkpoint-*"))
        trainer = json.loads((run / f"checkpoint-{last}" / "trainer.json").read_text())
        trained = {
            "steps": last,
            "seconds": trainer["seconds"],
            "cpu_seconds": trainer["cpu_seconds"],
            "run": str(run),
            "recipe": {k: info["args"][k] for k in ("prediction", "self_cond", "mask_loss_weight", "lr", "batch_size")},
        }
    test = Dataset(data).split("test")
    num = min(a.num or len(test), len(test))
    print(
        f"toy data {data} at {a.size}px, model {a.model}, {trained['steps']} training steps "
        f"({trained['seconds']:.0f} s); "
        f"{num} test images, torch threads {torch.get_num_threads()}",
        flush=True,
    )
    print(f"{'setting':>18} {'SAE':>6} {'EBR':>6} {'IoU':>6} {'seconds':>8} {'CPU s':>8}")
    rows = {}
    for text in a.settings.split(","):
        name, steps, rescale = parse_setting(text)
        out = work / f"synthetic-{text.replace(':', '-')}"
        started, cpu = time.perf_counter(), time.process_time()
        defectsynth.sample(
            run,
            out=out,
            conditions=f"{data}:test",
            num=num,
            scheduler=name,
            steps=steps,
            rescale=rescale,
            overwrite=True,
        )
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
        m = compute_metrics(["sae", "ebr"], synthetic=out)
        rows[text] = {
            "sae": m["sae"]["all"],
            "ebr": m["ebr"]["all"],
            "iou": mask_iou(out, data),
            "seconds": seconds,
            "cpu_seconds": cpu_seconds,
        }
        r = rows[text]
        print(f"{text:>18} {_f(r['sae'])} {_f(r['ebr'])} {_f(r['iou'])} {seconds:8.1f} {cpu_seconds:8.1f}", flush=True)
    write_results(
        a.json, {"images": a.images, "size": a.size, "model": a.model, "num": num, "train": trained, "settings": rows}
    )


if __name__ == "__main__":
    main()
