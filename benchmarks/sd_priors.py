"""Speed of the visual priors of the sd-adapter backend on the CPU (random detector weights: the
speed does not depend on the values).

    PYTHONPATH=src python benchmarks/sd_priors.py [--size 512] [--repeats 3] [--threads 1]

Prints milliseconds per image for the canny, line-art and sketch (PiDiNet) priors, the mask prior
and the blending (eq. 4) at SIZE x SIZE, best of REPEATS. On a GPU the learned detectors are far
faster; generation with SDXL dominates the run time either way.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _results import add_json_option, write_results

from defectsynth.metrics.weights import save_weights
from defectsynth.sd_backend.detectors import LINEART_FILE, SKETCH_FILE, LineartGenerator, PiDiNet
from defectsynth.sd_backend.priors import PriorDetector, blend_priors, mask_prior


def best_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    add_json_option(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)
    mask = np.zeros((args.size, args.size), np.uint8)
    mask[args.size // 4 : args.size // 2, args.size // 4 : 3 * args.size // 4] = 1
    with tempfile.TemporaryDirectory() as tmp:
        save_weights(LineartGenerator(), Path(tmp) / LINEART_FILE)
        save_weights(PiDiNet(), Path(tmp) / SKETCH_FILE)
        detectors = {name: PriorDetector(name, tmp) for name in ("canny", "lineart", "sketch")}
    print(f"{args.size}x{args.size}, {args.threads} thread(s), best of {args.repeats}")
    ms = {}
    for name, detector in detectors.items():
        ms[name] = best_ms(lambda d=detector: d(image), args.repeats)
        print(f"  {name:8s} prior {ms[name]:9.1f} ms")
    edges = mask_prior(mask)
    ms["mask"] = best_ms(lambda: mask_prior(mask), args.repeats)
    print(f"  mask     prior {ms['mask']:9.1f} ms")
    prior = detectors["canny"](image)
    ms["blend"] = best_ms(lambda: blend_priors(prior, edges), args.repeats)
    print(f"  blend (eq. 4)  {ms['blend']:9.1f} ms")
    write_results(args.json, {"size": args.size, "threads": args.threads, "ms_per_image": ms})


if __name__ == "__main__":
    main()
