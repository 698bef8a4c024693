"""Small dataset folders for the metrics tests, written in code (nothing downloaded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from defectsynth.data import Box, DatasetWriter, Manifest, Sample
from defectsynth.data.model import make_classes

CLASSES = ["scratch", "spot", "crack"]


def write_dataset(
    out: Path,
    samples: list[Sample],
    *,
    source: dict | None = None,
    synthetic: bool = False,
    splits: dict[str, list[str]] | None = None,
    classes: list[str] = CLASSES,
) -> Path:
    manifest = Manifest(name=out.name, classes=make_classes(classes), source=source or {}, synthetic=synthetic)
    with DatasetWriter(out, manifest) as writer:
        for sample in samples:
            writer.add(sample)
        writer.commit(splits)
    return out


def random_images(n: int, size: int, seed: int, prefix: str = "img") -> list[Sample]:
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(n):
        image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        mask = np.zeros((size, size), np.uint8)
        mask[2:6, 2:6] = 1 + i % 3
        samples.append(Sample(f"{prefix}{i:02d}", image, mask, [Box(1 + i % 3, 2, 2, 6, 6)]))
    return samples
