"""What resizing takes away: labelled defects that vanish and boxes that lose every pixel.

Shrinking a mask with nearest neighbour keeps one source pixel per output pixel, so a defect thinner
than the shrink factor (a 1-2 px crack at 1/5 scale) can lose every pixel. ``prepare`` compares each
sample before and after :func:`~defectsynth.data.resize.resize_sample`:

- a *vanished class*: a class with pixels in the sample's mask before resizing and none after;
- an *emptied box*: a box whose region held pixels of its class before resizing, and whose scaled
  box (:func:`~defectsynth.data.resize.scale_box`) holds none after. Where the boxes are derived from
  the mask after resizing, the connected components of the mask before resizing are the boxes.

Samples without a mask lose nothing that can be measured (their boxes are scaled outward and keep at
least one pixel). ``min_defect_pixels`` turns the warning into a refusal: every class present in a
sample must keep at least that many pixels in the written mask.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from defectsynth.data.model import IGNORE_INDEX, Box, Sample
from defectsynth.data.resize import scale_box
from defectsynth.encoding.components import boxes_from_mask
from defectsynth.errors import DatasetError

logger = logging.getLogger(__name__)

# How many stems a warning names per class before it says "+N more".
NAMED_STEMS = 5


def defect_pixels(mask: np.ndarray | None) -> dict[int, int]:
    """Pixels per defect class in ``mask`` ((H, W) uint8 class ids); background and ignore left out."""
    if mask is None:
        return {}
    counts = np.bincount(mask.ravel(), minlength=256)
    return {c: int(counts[c]) for c in np.flatnonzero(counts) if c not in (0, IGNORE_INDEX)}


def _box_pixels(mask: np.ndarray, box: Box) -> int:
    return int(np.count_nonzero(mask[box.y_min : box.y_max, box.x_min : box.x_max] == box.cls))


def emptied_boxes(before: Sample, after: Sample, derived: bool) -> list[Box]:
    """Boxes of ``before`` (source resolution) that held pixels of their class and hold none in ``after``.

    derived: the boxes come from the mask after resizing, so those of ``before`` are its components.
    """
    if before.mask is None or after.mask is None:
        return []
    boxes = boxes_from_mask(before.mask) if derived else before.boxes
    (h, w), (out_h, out_w) = before.size, after.size
    sx, sy = out_w / w, out_h / h
    lost = []
    for box in boxes:
        if _box_pixels(before.mask, box) and not _box_pixels(after.mask, scale_box(box, sx, sy, out_w, out_h)):
            lost.append(box)
    return lost


@dataclass
class ResizeLoss:
    """Losses gathered over a dataset, per class name: stems of images in which the class vanished,
    and the number of emptied boxes (with the stems that held them)."""

    names: dict[int, str]
    size: str
    images: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    boxes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    box_stems: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def add(self, before: Sample, after: Sample, derived: bool) -> None:
        """Compare one sample before and after resizing (``derived``: see :func:`emptied_boxes`)."""
        kept = defect_pixels(after.mask)
        for cls, count in defect_pixels(before.mask).items():
            if count and not kept.get(cls):
                self.images[self._name(cls)].append(before.stem)
        for box in emptied_boxes(before, after, derived):
            name = self._name(box.cls)
            self.boxes[name] += 1
            if before.stem not in self.box_stems[name]:
                self.box_stems[name].append(before.stem)

    def _name(self, cls: int) -> str:
        return self.names.get(cls, str(cls))

    def to_json(self) -> dict:
        """For ``dataset.json``'s source: counts per defect class (zeros included) and the stems concerned."""
        classes = [name for cls, name in sorted(self.names.items()) if cls not in (0, IGNORE_INDEX)]
        return {
            "size": self.size,
            "images_with_class_lost": {k: len(self.images.get(k, [])) for k in classes},
            "boxes_emptied": {k: self.boxes.get(k, 0) for k in classes},
            "stems_with_class_lost": {k: list(v) for k, v in sorted(self.images.items())},
            "stems_with_boxes_emptied": {k: list(v) for k, v in sorted(self.box_stems.items())},
        }

    def warn(self) -> None:
        """Log one warning per kind of loss, naming the first stems of each class."""
        if self.images:
            parts = "; ".join(f"{k}: {len(v)} ({_stems(v)})" for k, v in sorted(self.images.items()))
            logger.warning("resizing to %s removed every pixel of a class in some images -- %s", self.size, parts)
        if self.boxes:
            parts = "; ".join(f"{k}: {n} in {_stems(self.box_stems[k])}" for k, n in sorted(self.boxes.items()))
            logger.warning("resizing to %s left boxes without a pixel of their class -- %s", self.size, parts)
        if self.images or self.boxes:
            logger.warning(
                "see docs/prepare.md (small defects: crops vs resizing); --min-defect-pixels N refuses instead"
            )


def _stems(stems: list[str]) -> str:
    shown = ", ".join(stems[:NAMED_STEMS])
    return shown + (f" +{len(stems) - NAMED_STEMS} more" if len(stems) > NAMED_STEMS else "")


def check_min_defect_pixels(before: Sample, after: Sample, minimum: int, names: dict[int, str]) -> None:
    """Refuse (DatasetError naming the stem, class and count) when a class present in ``before``
    keeps fewer than ``minimum`` pixels in ``after``'s mask."""
    kept = defect_pixels(after.mask)
    for cls, count in sorted(defect_pixels(before.mask).items()):
        if kept.get(cls, 0) < minimum:
            size = f"{after.size[1]}x{after.size[0]}"
            raise DatasetError(
                f"class {names.get(cls, cls)!r} keeps {kept.get(cls, 0)} pixels at {size} ({count} before); "
                f"--min-defect-pixels is {minimum}",
                after.stem,
            )
