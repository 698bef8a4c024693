"""Hand-made dataset folders for the filter and balance tests: tiny images, chosen classes and boxes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from defectsynth.data import Box, DatasetWriter, Manifest, Sample
from defectsynth.data.model import make_classes


def class_sample(stem: str, classes: tuple[int, ...], size: int = 8) -> Sample:
    """A size x size sample holding one 2x2 square of each class in ``classes`` (boxed)."""
    image = np.full((size, size, 3), 40 * (len(classes) + 1), np.uint8)
    mask = np.zeros((size, size), np.uint8)
    boxes = []
    for k, cls in enumerate(classes):
        y, x = 2 * (k // 2), 2 * (k % 2) + 4 * (k // 4)
        mask[y : y + 2, x : x + 2] = cls
        boxes.append(Box(cls, x, y, x + 2, y + 2))
    return Sample(stem, image, mask, boxes)


def write_dataset(
    out: Path, samples: list[Sample], names: tuple[str, ...] = ("a", "b", "c"), splits: dict | None = None, source: dict | None = None
) -> Path:
    """Write ``samples`` as a dataset folder with classes ``names`` (ids 1..)."""
    manifest = Manifest(name=out.name, classes=make_classes(list(names)), source=source or {"importer": "handmade"})
    with DatasetWriter(out, manifest) as writer:
        for sample in samples:
            writer.add(sample)
        writer.commit(splits)
    return out
