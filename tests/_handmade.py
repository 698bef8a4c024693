"""Hand-made samples for the filter and balance tests: tiny images holding chosen classes."""

from __future__ import annotations

import numpy as np

from defectsynth.data import Box, Sample


def class_sample(stem: str, classes: tuple[int, ...], size: int = 8) -> Sample:
    """A size x size sample holding one boxed 2x2 square of each class in ``classes`` (at most 4)."""
    image = np.full((size, size, 3), 40 * (len(classes) + 1), np.uint8)
    mask = np.zeros((size, size), np.uint8)
    boxes = []
    for k, cls in enumerate(classes):
        y, x = 4 * (k // 2), 4 * (k % 2)
        mask[y : y + 2, x : x + 2] = cls
        boxes.append(Box(cls, x, y, x + 2, y + 2))
    return Sample(stem, image, mask, boxes)
