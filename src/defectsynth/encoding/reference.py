"""Literal, slow readings of the box-map definitions, for tests and benchmarks only.

Every pixel and every box is visited in Python. The distance from a pixel to a box is the distance
to the closest point of the box's four edge segments, each computed exactly (the closest point of
an axis-parallel segment clamps the pixel's coordinates to the segment). Nothing here shares code
with :mod:`defectsynth.encoding.boxes`; the property tests compare the two on random boxes.
See that module's docstring for the definitions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

Edge = tuple[float, float, float, float]


def _edges(box: Sequence[int]) -> list[Edge]:
    """The four edge segments (xa, ya, xb, yb) of the rectangle [x_min, x_max] x [y_min, y_max]."""
    x0, y0, x1, y1 = (float(v) for v in box)
    return [(x0, y0, x1, y0), (x1, y0, x1, y1), (x0, y1, x1, y1), (x0, y0, x0, y1)]


def _segment_distance(px: float, py: float, edge: Edge) -> float:
    xa, ya, xb, yb = edge
    cx = min(max(px, min(xa, xb)), max(xa, xb))
    cy = min(max(py, min(ya, yb)), max(ya, yb))
    return math.hypot(px - cx, py - cy)


def boundary_distance(px: float, py: float, box: Sequence[int]) -> float:
    """Distance from the point (px, py) to the nearest point of the box's boundary."""
    return min(_segment_distance(px, py, edge) for edge in _edges(box))


def contains(px: float, py: float, box: Sequence[int]) -> bool:
    """Whether the point lies strictly inside the rectangle (pixel centres never lie on an edge)."""
    x0, y0, x1, y1 = box
    return x0 < px < x1 and y0 < py < y1


def reference_basd(
    boxes: Sequence[Sequence[int]], classes: Sequence[int], height: int, width: int, class_fill: str = "inside"
) -> tuple[np.ndarray, np.ndarray]:
    """BASD (H, W) float64 and C-BASD (H, W) uint8 by the definitions, pixel by pixel."""
    basd = np.full((height, width), -1.0)
    cbasd = np.zeros((height, width), np.uint8)
    if not boxes:
        return basd, cbasd
    diagonal = math.sqrt(height**2 + width**2)
    for i in range(height):
        for j in range(width):
            px, py = j + 0.5, i + 0.5
            best_in, class_in = math.inf, 0
            best_out, class_out = math.inf, 0
            for box, cls in zip(boxes, classes):  # strict < keeps the box listed first on ties
                d = boundary_distance(px, py, box)
                if contains(px, py, box):
                    if d < best_in:
                        best_in, class_in = d, cls
                elif d < best_out:
                    best_out, class_out = d, cls
            if best_in < math.inf:
                basd[i, j], cbasd[i, j] = best_in / diagonal, class_in
            else:
                basd[i, j] = -best_out / diagonal
                cbasd[i, j] = class_out if class_fill == "nearest" else 0
    return basd, cbasd


def reference_boxmask(
    boxes: Sequence[Sequence[int]], classes: Sequence[int], height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Occupancy (H, W) float32 and class map (H, W) uint8: each pixel painted by every box that
    contains it, larger boxes first (stable: equal areas in the order listed), pixel by pixel."""
    occupancy = np.full((height, width), -1.0, np.float32)
    class_map = np.zeros((height, width), np.uint8)
    area = [(b[2] - b[0]) * (b[3] - b[1]) for b in boxes]
    order = sorted(range(len(boxes)), key=lambda k: -area[k])  # sorted() is stable
    for i in range(height):
        for j in range(width):
            for k in order:
                if contains(j + 0.5, i + 0.5, boxes[k]):
                    occupancy[i, j], class_map[i, j] = 1.0, classes[k]
    return occupancy, class_map
