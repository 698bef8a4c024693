"""A small real run of `defectsynth evaluate` on toy data: real vs real + synthetic from `train`/`sample`.

    python benchmarks/evaluate_toy.py                       # prepare toy, train, sample, filter, evaluate
    python benchmarks/evaluate_toy.py --synthetic DIR ...   # evaluate synthetic folders you already have

Default pipeline, all seeded: ``prepare toy`` (240 images, 32 px), ``train --cond basd --target joint``
(model small, the default recipe, ``--train-steps`` steps of batch 16), ``sample`` the boxes of the real
*train* split (DDIM 50, as the BASD paper conditions on the segmentation training split, so the test
split stays unseen), ``filter --by boxes --clip-labels``, then ``evaluate`` on the real test split.
Prints SAE/EBR of the samples, the report table and the wall time of each stage; everything is kept
under ``--work`` (default: a temp folder).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from _results import add_json_option, write_results

import defectsynth
from defectsynth.metrics import compute_metrics


def synthetic_from_diffusion(work: Path, real: Path, a: argparse.Namespace) -> Path:
    """Train the box-guided model on ``real``'s train split, sample its boxes, keep labels inside boxes."""
    timed(
        "train",
        lambda: defectsynth.train(
            real,
            out=work / "run",
            cond="basd",
            target="joint",
            model="small",
            batch_size=16,
            lr=5e-4,
            epochs=10**6,
            max_steps=a.train_steps,
            checkpoint_every=a.train_steps,
            preview_every=0,
            seed=a.seed,
            progress=True,
        ),
    )
    timed(
        "sample",
        lambda: defectsynth.sample(
            work / "run",
            out=work / "synthetic",
            conditions=f"{real}:train",
            scheduler="ddim",
            steps=50,
            seed=a.seed,
            progress=True,
        ),
    )
    m = compute_metrics(["sae", "ebr"], synthetic=work / "synthetic", progress=False)
    print(f"synthetic: SAE {m['sae']['all']:.4f}  EBR {m['ebr']['all']:.4f} on the train boxes")
    timed(
        "filter",
        lambda: defectsynth.filter_dataset(
            work / "synthetic", work / "filtered", by="boxes", clip_labels=True, progress=False
        ),
    )
    return work / "filtered"


def timed(stage: str, fn):
    start = time.perf_counter()
    result = fn()
    print(f"[{stage}] {time.perf_counter() - start:.0f} s", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", type=Path, help="real dataset folder (default: a fresh toy dataset)")
    parser.add_argument(
        "--synthetic", type=Path, action="append", help="synthetic dataset folder(s) (default: train and sample one)"
    )
    parser.add_argument("--work", type=Path, help="folder for data, run, samples and report (default: a temp folder)")
    parser.add_argument("--num", type=int, default=240, help="toy images for the default real dataset")
    parser.add_argument("--size", default="32")
    parser.add_argument("--train-steps", type=int, default=600, help="diffusion training steps (batch 16)")
    parser.add_argument("--models", default="unet,fpn")
    parser.add_argument("--encoder", default="resnet18")
    parser.add_argument(
        "--epochs", type=int, default=15, help="with --budget steps: the budget in epochs of the real-only mix"
    )
    parser.add_argument(
        "--budget",
        default="steps",
        choices=["steps", "converge", "epochs"],
        help="evaluate --budget (default: equal steps per mix)",
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--loss", default="dice+ce")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--mix", action="append", help="default: R=all,S=0  R=all,S=R  R=0,S=R")
    parser.add_argument("--seed", type=int, default=0)
    add_json_option(parser)
    a = parser.parse_args()

    work = a.work or Path(tempfile.mkdtemp(prefix="evaluate_toy_"))
    start = time.perf_counter()
    real = a.real or work / "real"
    if a.real is None and not real.exists():
        defectsynth.prepare("toy", real, num=a.num, size=a.size, seed=a.seed, progress=False)
    synthetic = a.synthetic or [synthetic_from_diffusion(work, real, a)]
    out = work / "report"
    report = timed(
        "evaluate",
        lambda: defectsynth.evaluate(
            real,
            out,
            synthetic=synthetic,
            models=a.models.split(","),
            encoder=a.encoder,
            encoder_weights=None,
            epochs=a.epochs,
            budget=a.budget,
            batch_size=a.batch_size,
            size=a.size,
            lr=a.lr,
            loss=a.loss,
            repeats=a.repeats,
            mix=a.mix or ["R=all,S=0", "R=all,S=R", "R=0,S=R"],
            seed=a.seed,
            progress=True,
        ),
    )
    seconds = time.perf_counter() - start
    print((out / "report.md").read_text())
    cells = len(report["cells"]) if report else 0
    print(
        f"{cells} (model, mix, repeat) cells; whole benchmark {seconds:.0f} s on {torch.get_num_threads()} "
        f"thread(s); folder: {work}"
    )
    write_results(
        a.json,
        {
            "cells": cells,
            "seconds": seconds,
            "seconds_per_cell": seconds / max(cells, 1),
            "epochs": a.epochs,
            "budget": report["budget"] if report else a.budget,
            "num": a.num,
            "size": a.size,
            "train_steps": None if a.synthetic else a.train_steps,
            "report": str(out),
        },
    )


if __name__ == "__main__":
    main()
