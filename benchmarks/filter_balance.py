"""Speed of the filter and balance cores on a CPU.

    PYTHONPATH=src python benchmarks/filter_balance.py [--images 10000] [--pool 2000] [--masks 300]

Prints: Algorithm 1 plans per second for ``--images`` images with 1..3 of 8 classes (Zipf-like
class frequencies), the greedy merge selection from a ``--pool`` of synthetic samples, and the
per-mask speed of the box checks (SAE, empty boxes, clipping) at 256x256 with 10 boxes.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _results import add_json_option, write_results

from defectsynth.balancing import auto_n_balance, balance_generations, select_balanced
from defectsynth.data import Box, Sample
from defectsynth.filtering import box_problems, clip_to_boxes


def random_classes(rng: np.random.Generator, count: int, num_classes: int = 9) -> dict[str, tuple[int, ...]]:
    weights = 1.0 / np.arange(1, num_classes)  # class 1 most frequent
    weights /= weights.sum()
    return {
        f"img{i:06d}": tuple(
            sorted(set(rng.choice(np.arange(1, num_classes), size=rng.integers(1, 4), p=weights).tolist()))
        )
        for i in range(count)
    }


def random_sample(rng: np.random.Generator, size: int = 256, boxes: int = 10) -> Sample:
    mask = np.zeros((size, size), np.uint8)
    listed = []
    for _ in range(boxes):
        w, h = rng.integers(8, size // 4, size=2)
        x, y = rng.integers(0, size - w), rng.integers(0, size - h)
        cls = int(rng.integers(1, 5))
        listed.append(Box(cls, int(x), int(y), int(x + w), int(y + h)))
        # a blob that spills 3 pixels past the box on the right
        mask[y + 2 : y + h - 2, x + 2 : min(size, x + w + 3)] = cls
    return Sample("s", np.zeros((size, size, 3), np.uint8), mask, listed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--pool", type=int, default=2000)
    parser.add_argument("--masks", type=int, default=300)
    add_json_option(parser)
    args = parser.parse_args()
    rng = np.random.default_rng(0)

    real = random_classes(rng, args.images)
    start = time.perf_counter()
    n = auto_n_balance(real)
    generations = balance_generations(real, n)
    elapsed = time.perf_counter() - start
    plan_ms = elapsed * 1000
    print(f"plan: {args.images} images, auto n_balance {n}, {len(generations)} generations in {elapsed * 1000:.1f} ms")

    small = dict(list(real.items())[: args.images // 10])
    pool = {f"syn{k}": v for k, v in random_classes(rng, args.pool).items()}
    start = time.perf_counter()
    selected, short = select_balanced(small, pool, auto_n_balance(small), 9)
    elapsed = time.perf_counter() - start
    merge_s = elapsed
    print(
        f"merge selection: {len(selected)} of {args.pool} pool samples for {len(small)} real images in "
        f"{elapsed:.2f} s ({len(short)} classes short)"
    )

    samples = [random_sample(rng) for _ in range(args.masks)]
    start = time.perf_counter()
    for sample in samples:
        box_problems(sample, 5, 0.2, True)
        clip_to_boxes(sample.mask, sample.boxes)
    elapsed = time.perf_counter() - start
    print(f"box checks + clipping: {args.masks / elapsed:.0f} masks/s at 256x256 with 10 boxes")
    write_results(
        args.json, {"plan_ms": plan_ms, "merge_seconds": merge_s, "box_checks_masks_per_s": args.masks / elapsed}
    )


if __name__ == "__main__":
    main()
