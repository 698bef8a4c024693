"""Boxes from masks: one box per connected component of each class.

Most users have masks but no boxes; the box-guided model and the SAE/EBR metrics need boxes.
Components are 8-connected; components smaller than ``min_area`` pixels are dropped.
"""

from __future__ import annotations

import cv2
import numpy as np

from defectsynth.data.model import IGNORE_INDEX, Box


def boxes_from_mask(mask: np.ndarray, min_area: int = 1, connectivity: int = 8) -> list[Box]:
    """Boxes of the connected components of every class in ``mask`` ((H, W) uint8 class ids).

    Returns half-open pixel boxes, ordered by class id, then by top-left corner. Background (0) and
    ignore (255) pixels never form boxes.
    """
    boxes: list[Box] = []
    for cls in np.unique(mask):
        cls = int(cls)
        if cls in (0, IGNORE_INDEX):
            continue
        binary = (mask == cls).astype(np.uint8)
        count, _, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=connectivity)
        for x, y, w, h, area in stats[1:count]:
            if area >= min_area:
                boxes.append(Box(cls, int(x), int(y), int(x + w), int(y + h)))
    return sorted(boxes, key=lambda b: (b.cls, b.y_min, b.x_min, b.y_max, b.x_max))
