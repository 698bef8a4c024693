"""Seconds per 1000 images for SAE + EBR at 256x256 (target: under 10 s).

Two numbers: the pure array function (``sae_ebr_counts`` on masks already in memory, what training
previews use) and the whole ``compute_metrics(["sae", "ebr"], synthetic=...)`` on a dataset folder
(PNG masks and JSON boxes read from disk, validated). Masks hold 4 defect classes drawn as boxes
that partly spill out of their condition box, with some ignore pixels.

    PYTHONPATH=src python benchmarks/metrics_sae_ebr.py [--num 1000] [--size 256] [--boxes 6]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from _results import add_json_option, write_results

from defectsynth.data import Box, DatasetWriter, Manifest, Sample
from defectsynth.data.model import boxes_to_array, make_classes
from defectsynth.metrics import compute_metrics, sae_ebr_counts
from defectsynth.metrics.sae_ebr import SaeEbrCounts


def make_sample(index: int, size: int, num_boxes: int) -> Sample:
    rng = np.random.default_rng(index)
    mask = np.zeros((size, size), np.uint8)
    boxes = []
    for _ in range(num_boxes):
        w, h = rng.integers(8, size // 3, 2)
        x0, y0 = rng.integers(0, size - w), rng.integers(0, size - h)
        cls = int(rng.integers(1, 5))
        boxes.append(Box(cls, int(x0), int(y0), int(x0 + w), int(y0 + h)))
        dx, dy = rng.integers(-4, 5, 2)  # the generated defect spills a little out of its box
        mask[max(0, y0 + dy) : y0 + h + dy, max(0, x0 + dx) : x0 + w + dx] = cls
    mask[rng.integers(0, size, 50), rng.integers(0, size, 50)] = 255
    return Sample(f"s{index:05d}", np.zeros((size, size, 3), np.uint8), mask, boxes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=1000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--boxes", type=int, default=6)
    add_json_option(parser)
    args = parser.parse_args()
    samples = [make_sample(i, args.size, args.boxes) for i in range(args.num)]
    per_1000 = 1000 / args.num

    start = time.perf_counter()
    total = SaeEbrCounts.zeros(5)
    for s in samples:
        total = total + sae_ebr_counts(s.mask, *boxes_to_array(s.boxes), num_classes=5)
    pure = time.perf_counter() - start
    print(f"sae_ebr_counts (arrays in memory): {pure * per_1000:.3f} s per 1000 images at {args.size}x{args.size}")

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "synth"
        manifest = Manifest("bench", make_classes(["a", "b", "c", "d"]), synthetic=True)
        with DatasetWriter(out, manifest) as writer:
            for s in samples:
                writer.add(s)
            writer.commit()
        start = time.perf_counter()
        result = compute_metrics(["sae", "ebr"], synthetic=out)
        folder = time.perf_counter() - start
    print(f"compute_metrics sae+ebr (dataset folder, read + validate): {folder * per_1000:.3f} s per 1000 images")
    print(
        f"(SAE all = {100 * result['sae']['all']:.2f}%, EBR all = {100 * result['ebr']['all']:.2f}%, same counts: "
        f"{int(total.misaligned.sum()) == sum(c['misaligned'] for c in result['sae']['counts'].values())})"
    )
    write_results(
        args.json,
        {"size": args.size, "seconds_per_1000_arrays": pure * per_1000, "seconds_per_1000_folder": folder * per_1000},
    )


if __name__ == "__main__":
    main()
