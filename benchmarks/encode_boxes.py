"""Speed of the box maps on one CPU thread.

    PYTHONPATH=src python benchmarks/encode_boxes.py [--maps 400] [--literal-maps 2]

Prints maps/s for BASD + C-BASD (both class fills) and boxmask at 256x256 with 10 random boxes,
and the speed-up of ``basd_maps`` over the literal per-pixel reference at 128x128 with 5 boxes.
Targets (issue 3): >= 200 maps/s at 256x256 with 10 boxes, >= 1000x over the literal reference.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from _results import add_json_option, write_results

from defectsynth.encoding import basd_maps, boxmask_maps
from defectsynth.encoding.reference import reference_basd


def random_boxes(rng: np.random.Generator, count: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` boxes with sides of 4..size/3 pixels at random places, classes 1..4."""
    sides = rng.integers(4, size // 3, size=(count, 2))
    corners = rng.integers(0, size - sides + 1)
    return np.concatenate([corners, corners + sides], axis=1), rng.integers(1, 5, size=count)


def maps_per_second(fn, cases, size: int, repeats: int = 1, **kwargs) -> tuple[float, float]:
    """(best, median) maps/s over ``repeats`` timed passes over ``cases`` (wall clock). The best
    pass is the one least disturbed by other processes on a shared machine."""
    fn(*cases[0], size, size, **kwargs)  # warm-up
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for xyxy, classes in cases:
            fn(xyxy, classes, size, size, **kwargs)
        rates.append(len(cases) / (time.perf_counter() - start))
    return max(rates), statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maps", type=int, default=100, help="maps per timed pass of a fast variant")
    parser.add_argument("--repeats", type=int, default=7, help="timed passes per fast variant")
    parser.add_argument("--literal-maps", type=int, default=2, help="maps timed with the literal reference")
    add_json_option(parser)
    args = parser.parse_args()
    torch.set_num_threads(1)
    results: dict = {"size": 256, "boxes": 10, "threads": 1, "maps_per_s": {}}
    rng = np.random.default_rng(0)

    cases = [random_boxes(rng, 10, 256) for _ in range(args.maps)]
    print(f"256x256, 10 boxes, 1 thread: maps/s, best and median of {args.repeats} passes of {args.maps} maps")
    for name, fn, kwargs in [
        ("basd_maps (inside)", basd_maps, {}),
        ("basd_maps (nearest)", basd_maps, {"class_fill": "nearest"}),
        ("boxmask_maps", boxmask_maps, {}),
    ]:
        best, median = maps_per_second(fn, cases, 256, args.repeats, **kwargs)
        print(f"  {name:22s} best {best:6.0f}  median {median:6.0f}")
        results["maps_per_s"][name] = {"best": best, "median": median}

    small = [random_boxes(rng, 5, 128) for _ in range(max(args.maps, args.literal_maps))]
    fast, fast_median = maps_per_second(basd_maps, small[: args.maps], 128, args.repeats)
    literal, _ = maps_per_second(
        lambda b, c, h, w: reference_basd(b.tolist(), c.tolist(), h, w), small[: args.literal_maps], 128
    )
    print(
        f"128x128, 5 boxes: basd_maps best {fast:.0f} (median {fast_median:.0f}) maps/s, literal reference "
        f"{literal:.3f} maps/s"
    )
    print(f"  speed-up over the literal reference: {fast / literal:,.0f}x (median {fast_median / literal:,.0f}x)")
    results["speedup_over_literal_128px"] = fast / literal
    write_results(args.json, results)


if __name__ == "__main__":
    main()
