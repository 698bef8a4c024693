"""A small real run of `defectsynth evaluate` on toy data: real vs real + synthetic.

    PYTHONPATH=src python benchmarks/evaluate_toy.py --synthetic runs/toy-sample   # a folder from `defectsynth sample`
    PYTHONPATH=src python benchmarks/evaluate_toy.py                               # stand-in synthetic data (see below)

Without --synthetic the "synthetic" dataset is a second procedural toy dataset (other seed): a
stand-in until `train`/`sample` exist, which checks the machinery and timing, not diffusion data.
Prints the report table and the wall time; the report folder is kept (default: a temp folder).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from defectsynth.data.prepare import prepare
from defectsynth.evaluation import evaluate
from _results import add_json_option, write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", type=Path, help="real dataset folder (default: a fresh toy dataset)")
    parser.add_argument("--synthetic", type=Path, action="append", help="synthetic dataset folder(s) (default: a stand-in toy dataset)")
    parser.add_argument("--out", type=Path, help="report folder (default: a temp folder)")
    parser.add_argument("--num", type=int, default=160, help="toy images for the default real dataset")
    parser.add_argument("--size", default="64")
    parser.add_argument("--models", default="unet,fpn")
    parser.add_argument("--encoder", default="resnet18")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--loss", default="dice+ce")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--mix", action="append", help="default: R=all,S=0  R=all,S=R  R=0,S=R")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a shared CPU)")
    add_json_option(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    work = Path(tempfile.mkdtemp(prefix="evaluate_toy_"))
    real = args.real or work / "real"
    if args.real is None:
        prepare("toy", real, num=args.num, size=args.size, seed=0, progress=False)
    synthetic = args.synthetic
    if not synthetic:
        synthetic = [work / "standin-synthetic"]
        prepare("toy", synthetic[0], num=args.num, size=args.size, seed=1, progress=False)
        print(f"no --synthetic given: using a second toy dataset as a stand-in ({synthetic[0]})")
    out = args.out or work / "report"
    start = time.perf_counter()
    report = evaluate(
        real, out, synthetic=synthetic, models=args.models.split(","), encoder=args.encoder, encoder_weights=None,
        epochs=args.epochs, batch_size=args.batch_size, size=args.size, lr=args.lr, loss=args.loss, repeats=args.repeats,
        mix=args.mix or ["R=all,S=0", "R=all,S=R", "R=0,S=R"], seed=0, progress=True,
    )
    seconds = time.perf_counter() - start
    print((out / "report.md").read_text())
    cells = len(report["cells"]) if report else 0
    print(f"{cells} (model, mix, repeat) results in {seconds:.0f} s ({seconds / max(cells, 1):.1f} s each); report: {out}")
    write_results(args.json, {"cells": cells, "seconds": seconds, "seconds_per_cell": seconds / max(cells, 1), "epochs": args.epochs, "num": args.num, "size": args.size, "report": str(out)})


if __name__ == "__main__":
    main()
