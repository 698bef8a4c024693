"""Image + mask pairs from dataset folders as a torch Dataset for the segmentation benchmark.

Every pair is read once (validated by :class:`~defectsynth.data.Dataset`), resized to the
benchmark size (images by area/bilinear, masks by nearest neighbour, as ``prepare`` does) and
kept in memory: the benchmark trains many small networks on the same few hundred pairs.

Items: image (3, H, W) float32, normalised with the ImageNet mean and standard deviation (smp's
preprocessing for ImageNet encoders); mask (H, W) int64 class ids with 255 = ignore. In
per-class-binary mode the mask is 1 for the chosen class, 0 for every other class, 255 kept.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from defectsynth.data import IGNORE_INDEX, Dataset
from defectsynth.data.resize import resize_sample
from defectsynth.errors import DatasetError

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)

Pair = tuple[np.ndarray, np.ndarray]  # image (H, W, 3) uint8, mask (H, W) uint8


def normalise(images: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) uint8 (or 0..255 float) -> float32 network input: x / 255, then the ImageNet mean and std.

    The one input normalisation of every segmentation network defectsynth trains or applies
    (``evaluate``, ``filter --by segmenter``).
    """
    return (images.float() / 255.0 - IMAGENET_MEAN) / IMAGENET_STD


def read_pair(dataset: Dataset, stem: str, size: tuple[int, int], who: str = "the benchmark") -> Pair:
    """The (image, mask) of ``stem`` resized to ``size`` = (H, W) (area/bilinear, nearest for the mask).

    who: named in the error when ``dataset`` has no masks/ folder.
    """
    if not dataset.has_masks:
        raise DatasetError(f"{who} needs masks, but this dataset has no masks/ folder", dataset.root)
    sample = resize_sample(dataset.read(stem), size)
    return sample.image, sample.mask  # type: ignore[return-value]


class PairCache:
    """Resized (image, mask) pairs of several dataset folders, read on first use."""

    def __init__(self, size: tuple[int, int]):
        self.size = size
        self._pairs: dict[tuple[str, str], Pair] = {}

    def get(self, dataset: Dataset, stem: str) -> Pair:
        key = (str(dataset.root), stem)
        if key not in self._pairs:
            self._pairs[key] = read_pair(dataset, stem, self.size)
        return self._pairs[key]

    def pairs(self, dataset: Dataset, stems: Sequence[str]) -> list[Pair]:
        return [self.get(dataset, stem) for stem in stems]


def classic_augmentation() -> v2.Transform:
    """The thesis' classic augmentation (section 7.3.6, from Macháček et al.'s validation code):
    random affine (shift, scale, rotate), horizontal flip, sharpening or blurring, contrast and hue.
    Geometric transforms move image and mask together; new mask pixels are 255 (ignored)."""
    return v2.Compose(
        [
            v2.RandomHorizontalFlip(0.5),
            v2.RandomAffine(
                degrees=15,
                translate=(0.0625, 0.0625),
                scale=(0.9, 1.1),
                fill={tv_tensors.Image: 0, tv_tensors.Mask: IGNORE_INDEX},
            ),
            v2.RandomChoice([v2.RandomAdjustSharpness(2.0, p=1.0), v2.GaussianBlur(3, sigma=(0.1, 1.0))]),
            v2.ColorJitter(contrast=0.2, hue=0.05),
        ]
    )


class SegmentationPairs(torch.utils.data.Dataset):
    """A torch Dataset over in-memory pairs; ``binary_class`` turns masks into class-vs-rest."""

    def __init__(self, pairs: Sequence[Pair], augment: bool = False, binary_class: int | None = None):
        self.pairs = list(pairs)
        self.transform = classic_augmentation() if augment else None
        self.binary_class = binary_class

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_np, mask_np = self.pairs[index]
        image = tv_tensors.Image(torch.from_numpy(np.ascontiguousarray(image_np)).permute(2, 0, 1))
        mask = tv_tensors.Mask(torch.from_numpy(np.ascontiguousarray(mask_np)).long())
        if self.transform is not None:
            image, mask = self.transform(image, mask)
        mask = mask.as_subclass(torch.Tensor)
        if self.binary_class is not None:
            mask = torch.where(mask == IGNORE_INDEX, mask, (mask == self.binary_class).long())
        return normalise(image.as_subclass(torch.Tensor)), mask
