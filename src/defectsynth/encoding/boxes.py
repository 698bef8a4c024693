"""BASD and C-BASD box maps (Simoni & Pelosin, section 3.2 and Algorithm 1), and the boxmask ablation.

Geometry is continuous: pixel (row i, column j) is the point (j + 0.5, i + 0.5); a half-open box
``[x_min, y_min, x_max, y_max]`` is the rectangle [x_min, x_max] x [y_min, y_max].

- BASD at a pixel inside at least one box: + the smallest distance from the pixel to the edge of a
  box that contains it (always >= 0.5). Outside every box: - the Euclidean distance to the nearest
  box. Divided by the image diagonal sqrt(H^2 + W^2). No boxes: every pixel is -1.
- C-BASD, ``class_fill="inside"`` (the paper's text and public code): inside boxes, the class of the
  box that gave the BASD value (ties: the box listed first); 0 outside all boxes.
  ``class_fill="nearest"`` (the paper's Algorithm 1): outside pixels take the class of the nearest box.
- boxmask (the ablation baseline): occupancy (+1 inside any box, -1 outside) and a class map filled
  box by box, larger boxes first so that smaller boxes are drawn last (on top).

All maps are computed for every pixel and box at once (no Python loop over pixels).
"""

from __future__ import annotations

import numpy as np

CLASS_FILLS = ("inside", "nearest")


def _as_boxes(xyxy: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    xyxy = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    classes = np.asarray(classes, dtype=np.int64).reshape(-1)
    if len(xyxy) != len(classes):
        raise ValueError(f"{len(xyxy)} boxes but {len(classes)} classes")
    return xyxy, classes


def basd_maps(
    xyxy: np.ndarray, classes: np.ndarray, height: int, width: int, class_fill: str = "inside"
) -> tuple[np.ndarray, np.ndarray]:
    """BASD and C-BASD maps of one image.

    xyxy: (N, 4) half-open integer pixel boxes. classes: (N,) class ids (1..254).
    Returns ``basd`` (H, W) float32 in [-1, 1] and ``cbasd`` (H, W) uint8 class ids.
    """
    if class_fill not in CLASS_FILLS:
        raise ValueError(f"class_fill must be one of {CLASS_FILLS}, got {class_fill!r}")
    xyxy, classes = _as_boxes(xyxy, classes)
    diagonal = float(np.hypot(height, width))
    if len(xyxy) == 0:
        return np.full((height, width), -1.0, np.float32), np.zeros((height, width), np.uint8)
    px = np.arange(width, dtype=np.float64) + 0.5  # (W,)
    py = np.arange(height, dtype=np.float64) + 0.5  # (H,)
    x0, y0, x1, y1 = (xyxy[:, k][:, None] for k in range(4))  # (N, 1) each
    # 1. separable per-axis distances: to the nearer edge (inside) and to the interval (outside).
    in_x = np.minimum(px - x0, x1 - px)  # (N, W), >= 0 where the column lies inside
    in_y = np.minimum(py - y0, y1 - py)  # (N, H)
    out_x = np.maximum(np.maximum(x0 - px, px - x1), 0.0)  # (N, W)
    out_y = np.maximum(np.maximum(y0 - py, py - y1), 0.0)  # (N, H)
    # 2. per box and pixel: inside distance (inf when outside), outside distance (0 when inside).
    inside = (in_x[:, None, :] > 0) & (in_y[:, :, None] > 0)  # (N, H, W)
    d_in = np.where(inside, np.minimum(in_x[:, None, :], in_y[:, :, None]), np.inf)
    d_out = np.hypot(out_x[:, None, :], out_y[:, :, None])
    # 3. smallest positive distance among containing boxes, else nearest box (argmin: first on ties).
    k_in = np.argmin(d_in, axis=0)
    k_out = np.argmin(d_out, axis=0)
    best_in = np.take_along_axis(d_in, k_in[None], 0)[0]
    any_inside = np.isfinite(best_in)
    best_out = np.take_along_axis(d_out, k_out[None], 0)[0]
    basd = np.where(any_inside, best_in, -best_out) / diagonal
    cbasd = np.where(any_inside, classes[k_in], classes[k_out] if class_fill == "nearest" else 0)
    return basd.astype(np.float32), cbasd.astype(np.uint8)


def boxmask_maps(xyxy: np.ndarray, classes: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Occupancy (+1 inside any box, -1 outside; float32 (H, W)) and class map (uint8 (H, W)),
    filled box by box with larger boxes first, so smaller boxes are drawn last."""
    xyxy, classes = _as_boxes(xyxy, classes)
    occupancy = np.full((height, width), -1.0, np.float32)
    class_map = np.zeros((height, width), np.uint8)
    areas = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
    for k in np.argsort(-areas, kind="stable"):
        x0, y0, x1, y1 = (int(v) for v in xyxy[k])
        occupancy[y0:y1, x0:x1] = 1.0
        class_map[y0:y1, x0:x1] = classes[k]
    return occupancy, class_map
