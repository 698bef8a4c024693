"""Segmentation Alignment Error and Empty Bounding-Box Rate (Simoni & Pelosin, section 4.2, eqs. 5 and 6).

Both compare a generated mask with the boxes that conditioned it (a synthetic dataset's ``boxes/``):

- SAE (eq. 5): a generated pixel of class c is *misaligned* when it lies in no box of class c of
  its image. Per class: misaligned / generated pixels of that class; ``all`` pools every pixel of
  every class (the paper's "Avg is computed over all pixels").
- EBR (eq. 6): a box of class c is *empty* when no pixel of class c of the generated mask lies in
  it. Per class: empty / all boxes of that class; ``all`` pools every box. Every box counts once.

Background (0) and ignore (255) pixels are not generated defect pixels. Unlike the public code,
missed boxes are all counted and there are no placeholder boxes.

Two readings (``class_agnostic``): by default both are *class-aware* (above: a pixel must lie in a
box of its own class, a box must hold a pixel of its own class), stricter than the paper's
equations; ``class_agnostic=True`` is the equations as written: P_out are the generated defect
pixels outside every box whatever its class (eq. 5), B_miss the boxes holding no generated defect
pixel of any class (eq. 6, G ∩ b_k = ∅). Per-class numbers keep the pixel's / the box's class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from defectsynth.data.model import IGNORE_INDEX, boxes_to_array, stray_class_ids
from defectsynth.errors import DatasetError
from defectsynth.formats.dataset import Dataset
from defectsynth.progress import track


@dataclass
class SaeEbrCounts:
    """Per-class counts (index = class id, length ``num_classes``); counts of several images add up with ``+``.

    generated: defect pixels of each class in the generated masks. misaligned: those outside every
    box of their class. boxes: boxes of each class. empty: boxes holding no pixel of their class.
    """

    generated: np.ndarray
    misaligned: np.ndarray
    boxes: np.ndarray
    empty: np.ndarray

    @classmethod
    def zeros(cls, num_classes: int) -> "SaeEbrCounts":
        return cls(*(np.zeros(num_classes, np.int64) for _ in range(4)))

    def __add__(self, other: "SaeEbrCounts") -> "SaeEbrCounts":
        return SaeEbrCounts(
            self.generated + other.generated,
            self.misaligned + other.misaligned,
            self.boxes + other.boxes,
            self.empty + other.empty,
        )

    def sae(self) -> tuple[np.ndarray, float | None]:
        """(per-class SAE, NaN where a class has no generated pixel; pooled SAE over classes 1.., None if no pixel)."""
        return _ratios(self.misaligned, self.generated)

    def ebr(self) -> tuple[np.ndarray, float | None]:
        """(per-class EBR, NaN where a class has no box; pooled EBR over all boxes, None if no box)."""
        return _ratios(self.empty, self.boxes)


def _ratios(num: np.ndarray, den: np.ndarray) -> tuple[np.ndarray, float | None]:
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(den > 0, num / np.maximum(den, 1), np.nan)
    total = int(den[1:].sum())
    return per_class, (float(num[1:].sum() / total) if total else None)


def inside_own_boxes(
    mask: np.ndarray, xyxy: np.ndarray, classes: np.ndarray, class_agnostic: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Which pixels of ``mask`` lie in a box of their own class, and which boxes hold such a pixel
    (``class_agnostic``: any defect pixel in any box, the paper's equations).

    mask: (H, W) uint8 class ids. xyxy: (N, 4) int half-open boxes. classes: (N,) box class ids.
    Returns ``aligned`` (H, W) bool and ``hit`` (N,) bool (False = an empty box in the EBR sense).
    """
    aligned = np.zeros(mask.shape, dtype=bool)
    hit = np.zeros(len(classes), dtype=bool)
    for k, ((x0, y0, x1, y1), cls) in enumerate(zip(xyxy, classes)):
        crop = mask[y0:y1, x0:x1]
        own = ((crop != 0) & (crop != IGNORE_INDEX)) if class_agnostic else crop == cls
        aligned[y0:y1, x0:x1] |= own
        hit[k] = own.any()
    return aligned, hit


def sae_ebr_counts(
    mask: np.ndarray, xyxy: np.ndarray, classes: np.ndarray, num_classes: int, class_agnostic: bool = False
) -> SaeEbrCounts:
    """SAE/EBR counts of one generated mask against the boxes that conditioned it (class-aware, or
    ``class_agnostic`` as the paper's equations: see the module docstring).

    mask: (H, W) uint8 class ids (0 background, 255 ignore). xyxy: (N, 4) int half-open pixel boxes
    ``x_min, y_min, x_max, y_max``. classes: (N,) box class ids in 1..num_classes-1.
    Returns per-class counts (index = class id); see :class:`SaeEbrCounts`.
    """
    mask = np.asarray(mask)
    xyxy = np.asarray(xyxy, dtype=np.int64).reshape(-1, 4)
    classes = np.asarray(classes, dtype=np.int64).reshape(-1)
    if len(xyxy) != len(classes):
        raise ValueError(f"{len(xyxy)} boxes but {len(classes)} classes")
    if len(classes) and (classes.min() < 1 or classes.max() >= num_classes):
        raise ValueError(f"box classes must lie in 1..{num_classes - 1}, got {sorted(set(classes.tolist()))}")
    histogram = np.bincount(mask.ravel(), minlength=256)
    stray = stray_class_ids(mask, range(num_classes))
    if stray:
        raise ValueError(f"mask holds class ids {stray} >= num_classes {num_classes}")
    counts = SaeEbrCounts.zeros(num_classes)
    counts.generated[:] = histogram[:num_classes]
    counts.generated[0] = 0
    # 1. mark pixels that lie in a box of their own class; 2. a box holding none of them is empty.
    aligned, hit = inside_own_boxes(mask, xyxy, classes, class_agnostic)
    np.add.at(counts.boxes, classes, 1)
    np.add.at(counts.empty, classes[~hit], 1)
    inside = np.bincount(mask[aligned].ravel(), minlength=num_classes)[:num_classes]
    counts.misaligned[:] = counts.generated - inside
    counts.misaligned[0] = 0
    return counts


def dataset_sae_ebr_counts(
    dataset: Dataset, stems: list[str], progress: bool = False, class_agnostic: bool = False
) -> SaeEbrCounts:
    """Sum of :func:`sae_ebr_counts` over ``stems`` of a dataset folder with masks (its boxes are the conditions)."""
    if not dataset.has_masks:
        raise DatasetError("sae and ebr need generated masks, and this dataset has no masks/ folder", dataset.root)
    if not (dataset.root / "boxes").is_dir():
        raise DatasetError(
            "sae and ebr measure masks against the boxes that conditioned them, and this dataset has no boxes/ "
            "folder: there are no boxes to measure against",
            dataset.root,
        )
    num_classes = dataset.manifest.num_classes
    total = SaeEbrCounts.zeros(num_classes)
    for stem in track(stems, total=len(stems), description="sae/ebr", enabled=progress):
        mask = dataset.read_mask(stem)
        xyxy, classes = boxes_to_array(dataset.read_boxes(stem, mask.shape))
        total = total + sae_ebr_counts(mask, xyxy, classes, num_classes, class_agnostic)
    return total


def sae_ebr_report(counts: SaeEbrCounts, class_names: dict[int, str]) -> dict[str, dict]:
    """JSON-ready ``{"sae": {...}, "ebr": {...}}``: ``per_class`` (fractions, None when undefined), ``all`` and
    ``counts``."""

    def block(
        per_class: np.ndarray, pooled: float | None, num: np.ndarray, den: np.ndarray, num_key: str, den_key: str
    ) -> dict:
        ids = [i for i in sorted(class_names) if i > 0]
        return {
            "per_class": {class_names[i]: (None if np.isnan(per_class[i]) else float(per_class[i])) for i in ids},
            "all": pooled,
            "counts": {class_names[i]: {num_key: int(num[i]), den_key: int(den[i])} for i in ids},
        }

    return {
        "sae": block(*counts.sae(), counts.misaligned, counts.generated, "misaligned", "generated"),
        "ebr": block(*counts.ebr(), counts.empty, counts.boxes, "empty", "boxes"),
    }
