"""Resizing samples to the training size.

``size`` is always (height, width). Images are resampled with area averaging when shrinking and
bilinear interpolation when growing; masks with nearest neighbour, so no new class ids appear.
Box corners are scaled outward (floor of the minimum, ceiling of the maximum), so a box still
covers every pixel of its object.

With ``keep_aspect`` the sample is scaled to fit inside ``size`` and padded at the right and
bottom: images by repeating the edge pixels, masks with background (0). This is how the BASD
paper turns the 2800x1024 wood images into 352x128 (pad to 2816, then downscale 8x).
"""

from __future__ import annotations

import math
import re

import cv2
import numpy as np

from defectsynth.data.model import Box, Sample
from defectsynth.errors import OptionError

_SIZE = re.compile(r"^\s*(\d+)\s*(?:[xX]\s*(\d+))?\s*$")


def parse_size(text: str | int | tuple[int, int] | None) -> tuple[int, int] | None:
    """``"256"`` -> (256, 256); ``"352x128"`` (width x height) -> (128, 352). Returns (height, width)."""
    if text is None:
        return None
    if isinstance(text, tuple):
        return text
    match = _SIZE.match(str(text))
    if not match:
        raise OptionError(f"--size: expected N or WIDTHxHEIGHT (for example 256 or 352x128), got {text!r}")
    width = int(match.group(1))
    height = int(match.group(2)) if match.group(2) else width
    if not (8 <= width <= 8192 and 8 <= height <= 8192):
        raise OptionError(f"--size: width and height must lie in 8..8192, got {text!r}")
    return height, width


def format_size(size: tuple[int, int]) -> str:
    """(height, width) -> ``"WIDTHxHEIGHT"``."""
    return f"{size[1]}x{size[0]}"


def _resize_image(image: np.ndarray, width: int, height: int) -> np.ndarray:
    shrinking = width < image.shape[1] or height < image.shape[0]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def scale_box(box: Box, sx: float, sy: float, width: int, height: int) -> Box:
    """Scale a half-open box by (sx, sy), outward, clipped to a ``width`` x ``height`` image."""
    x0 = min(max(math.floor(box.x_min * sx + 1e-9), 0), width - 1)
    y0 = min(max(math.floor(box.y_min * sy + 1e-9), 0), height - 1)
    x1 = min(max(math.ceil(box.x_max * sx - 1e-9), x0 + 1), width)
    y1 = min(max(math.ceil(box.y_max * sy - 1e-9), y0 + 1), height)
    return Box(box.cls, x0, y0, x1, y1)


def resize_sample(sample: Sample, size: tuple[int, int] | None, keep_aspect: bool = False) -> Sample:
    """Return ``sample`` resized to ``size`` = (height, width); None keeps it as it is."""
    if size is None:
        return sample
    height, width = size
    h, w = sample.size
    if (h, w) == (height, width):
        return sample
    if keep_aspect:
        scale = min(width / w, height / h)
        inner_w, inner_h = max(1, round(w * scale)), max(1, round(h * scale))
    else:
        inner_w, inner_h = width, height
    sx, sy = inner_w / w, inner_h / h
    image = _resize_image(sample.image, inner_w, inner_h)
    mask = None
    if sample.mask is not None:
        mask = cv2.resize(sample.mask, (inner_w, inner_h), interpolation=cv2.INTER_NEAREST)
    if (inner_h, inner_w) != (height, width):
        pad = ((0, height - inner_h), (0, width - inner_w))
        image = np.pad(image, (*pad, (0, 0)), mode="edge")
        if mask is not None:
            mask = np.pad(mask, pad, mode="constant", constant_values=0)
    boxes = [scale_box(b, sx, sy, inner_w, inner_h) for b in sample.boxes]
    return Sample(sample.stem, np.ascontiguousarray(image), mask, boxes)
