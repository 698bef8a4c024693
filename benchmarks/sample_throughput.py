"""Sampling throughput of `defectsynth sample` and the share of time spent outside the network.

Trains a model for a few steps (the weights do not matter for speed), then samples with each
scheduler and reports images/s and the share of sampling time outside the UNet's forward passes
(scheduler steps, noise, decoding, PNG writing; target: under 10%).

    python benchmarks/sample_throughput.py [--model small] [--size 32] [--num 32] [--steps 20]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from unittest import mock

import torch
from _results import add_json_option, write_results
from diffusers import UNet2DModel

import defectsynth


def timed_sample(run: Path, out: Path, **options) -> tuple[float, float]:
    """(total seconds, seconds inside UNet2DModel.forward)."""
    inside = [0.0]
    forward = UNet2DModel.forward

    def timed_forward(self, *args, **kwargs):
        started = time.perf_counter()
        result = forward(self, *args, **kwargs)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        inside[0] += time.perf_counter() - started
        return result

    with mock.patch.object(UNet2DModel, "forward", timed_forward):
        started = time.perf_counter()
        defectsynth.sample(run, out=out, **options)
        total = time.perf_counter() - started
    return total, inside[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="small")
    parser.add_argument("--size", default="32")
    parser.add_argument("--num", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16)
    add_json_option(parser)
    a = parser.parse_args()
    results: dict = {
        "model": a.model,
        "size": a.size,
        "num": a.num,
        "steps": a.steps,
        "batch_size": a.batch_size,
        "threads": torch.get_num_threads(),
        "schedulers": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        defectsynth.prepare("toy", tmp / "data", num=24, size=a.size)
        run = defectsynth.train(tmp / "data", out=tmp / "run", model=a.model, max_steps=1, preview_every=0)
        defectsynth.sample(run, out=tmp / "warm", num=2, scheduler="ddim", steps=2)  # first-call costs
        print(
            f"model {a.model}, {a.size}px, {a.num} samples, {a.steps} steps, batch {a.batch_size}, torch "
            f"threads {torch.get_num_threads()}"
        )
        for scheduler in ("ddim", "ddpm", "dpm"):
            total, inside = timed_sample(
                run, tmp / scheduler, num=a.num, scheduler=scheduler, steps=a.steps, batch_size=a.batch_size
            )
            print(
                f"{scheduler:>5}: {a.num / total:7.2f} images/s, {100 * (1 - inside / total):5.1f}% of the "
                "time outside the network"
            )
            results["schedulers"][scheduler] = {
                "images_per_s": a.num / total,
                "outside_network_share": 1 - inside / total,
            }
    write_results(a.json, results)


if __name__ == "__main__":
    main()
