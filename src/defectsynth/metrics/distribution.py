"""Class balance of a dataset: entropy and class-imbalance ratio (Che et al., VOC paper, Table 4).

Both start from the number of images that contain each defect class (a class is present in an
image when its mask holds a pixel of it or a box of it is listed; background is not a class here).

- entropy: shares p_c = n_c / sum_k n_k, entropy = -sum_c p_c log2 p_c in bits (higher = more
  balanced; log2 of the number of defect classes at most).
- CIR: the paper names a "class imbalance ratio" without defining it. We use the Gini coefficient
  of the per-class image counts, sum_i sum_j |n_i - n_j| / (2 K^2 mean(n)) over the K defect
  classes of the manifest: 0 when every class is in as many images, (K-1)/K when one class holds them all.
  Classes that appear in no image count (as zeros): a missing class is imbalance.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from defectsynth.data.model import IGNORE_INDEX, Box
from defectsynth.formats.dataset import Dataset
from defectsynth.progress import track


def sample_classes(mask: np.ndarray | None, boxes: Iterable[Box], num_classes: int) -> tuple[int, ...]:
    """Defect class ids present in a mask ((H, W) uint8 or None) or its boxes, ascending."""
    present = np.zeros(num_classes, bool)
    if mask is not None:
        present |= np.bincount(mask.ravel(), minlength=256)[:num_classes] > 0
    for box in boxes:
        present[box.cls] = True
    present[0] = False
    return tuple(int(c) for c in np.flatnonzero(present))


def classes_in(dataset: Dataset, stem: str) -> tuple[int, ...]:
    """The defect class ids present in ``stem`` of ``dataset`` (a pixel in its mask or a box of it), ascending."""
    mask = dataset.read_mask(stem)
    return sample_classes(
        mask, dataset.read_boxes(stem, None if mask is None else mask.shape), dataset.manifest.num_classes
    )


def count_images(classes: Iterable[tuple[int, ...]], num_classes: int) -> np.ndarray:
    """(num_classes,) int64: how many of the per-image class tuples ``classes`` hold each class."""
    counts = np.zeros(num_classes, np.int64)
    for present in classes:
        counts[list(present)] += 1
    return counts


def images_per_class(dataset: Dataset, stems: list[str], progress: bool = False) -> np.ndarray:
    """(num_classes,) int64: how many of ``stems`` contain each class (index = class id; index 0 stays 0)."""
    described = track(stems, total=len(stems), description=f"classes {dataset.root.name}", enabled=progress)
    return count_images((classes_in(dataset, stem) for stem in described), dataset.manifest.num_classes)


def entropy_bits(counts: np.ndarray) -> float | None:
    """Entropy in bits of the shares ``counts / counts.sum()`` (zeros contribute 0); None when all are 0."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        return None
    p = counts[counts > 0] / total
    return float(-(p * np.log2(p)).sum()) + 0.0


def gini(counts: np.ndarray) -> float | None:
    """Gini coefficient of ``counts`` (0 = balanced); None when there are no classes or all counts are 0."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.size == 0 or counts.sum() <= 0:
        return None
    diffs = np.abs(counts[:, None] - counts[None, :]).sum()
    return float(diffs / (2 * counts.size**2 * counts.mean()))


def distribution_report(counts: np.ndarray, class_names: dict[int, str]) -> dict[str, dict]:
    """JSON-ready
    ``{"entropy": {"per_class": shares, "all": bits}, "cir": {"per_class": image counts, "all": gini}}``."""
    ids = [i for i in sorted(class_names) if 0 < i < IGNORE_INDEX]
    defect_counts = counts[ids]
    total = int(defect_counts.sum())
    return {
        "entropy": {
            "per_class": {class_names[i]: (float(counts[i] / total) if total else None) for i in ids},
            "all": entropy_bits(defect_counts),
        },
        "cir": {"per_class": {class_names[i]: int(counts[i]) for i in ids}, "all": gini(defect_counts)},
    }
