"""Turning dataset samples into training tensors: targets, box conditions, flips, the null condition.

- Target (C_t, H, W) float32 in [-1, 1]: RGB scaled from uint8 and/or the analog-bit mask
  (BASD paper eq. (1)); ignore pixels (255) are encoded as background.
- Condition (C_c, H, W) float32: ``basd`` = [BASD, analog bits of C-BASD] (BASD paper section 3.2),
  ``boxmask`` = [occupancy, analog bits of the box class map]; ``none`` = 0 channels.
- ``mask`` condition (C, H, W) float32: the one-hot mask (background an ordinary class; ignore
  pixels (255) count as background), read by the SPADE UNet (SDM).
- Null condition (classifier-free guidance): all zeros, which no real condition equals (the bit
  channels of a real one are always +-1), like SDM's all-zero one-hot null label.

The box maps are computed once per image. A horizontal or vertical flip of the maps equals the maps
of the flipped boxes (the distances are symmetric and box order is kept), so flipping the cached
tensors moves images, masks and boxes consistently.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from defectsynth.data.model import IGNORE_INDEX, Box, Sample, boxes_to_array
from defectsynth.encoding import basd_maps, boxmask_maps, encode_bits
from defectsynth.errors import DatasetError

# A dataset is grey-scale when, in every image, the channels differ by at most this many levels on
# average (0 for images saved as grey; a JPEG's chroma rounding adds a fraction of a level).
GREY_TOLERANCE = 1.0
# A colour dataset whose median image differs by at most this many levels is nearly grey (CrackForest's
# road photos: 3): ``auto`` keeps RGB but says that ``--channels grey`` exists (docs/recipe-ablation.md).
NEAR_GREY = 8.0
CHANNELS = ("auto", "rgb", "grey")
logger = logging.getLogger(__name__)


def channel_difference(image: np.ndarray) -> float:
    """The larger of mean |R - G| and mean |G - B| of an (H, W, 3) uint8 RGB image, in levels."""
    x = image.astype(np.int16)
    return float(max(np.abs(x[..., 0] - x[..., 1]).mean(), np.abs(x[..., 1] - x[..., 2]).mean()))


def is_grey(image: np.ndarray) -> bool:
    """Whether an (H, W, 3) uint8 RGB image is grey: mean |R - G| and |G - B| within :data:`GREY_TOLERANCE`."""
    return channel_difference(image) <= GREY_TOLERANCE


def image_channels(channels: str, images) -> int:
    """1 or 3: ``grey`` -> 1, ``rgb`` -> 3, ``auto`` -> 1 when every image of ``images`` is grey
    (:func:`is_grey`); a nearly grey colour dataset (median difference within :data:`NEAR_GREY`) logs a hint."""
    if channels != "auto":
        return 1 if channels == "grey" else 3
    differences = [channel_difference(image) for image in images]
    if all(d <= GREY_TOLERANCE for d in differences):
        return 1
    median = float(np.median(differences))
    if median <= NEAR_GREY:
        logger.warning(
            "the training images are nearly grey (median channel difference %.1f levels): training RGB; --channels "
            "grey trains one "
            "luminance channel without colour noise (docs/recipe-ablation.md)",
            median,
        )
    return 3


def to_grey(images: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB -> (N, H, W, 1) uint8 luminance (ITU-R 601, as OpenCV; R = G = B keeps its value)."""
    grey = np.tensordot(images.astype(np.float32), np.array([0.299, 0.587, 0.114], np.float32), axes=([-1], [0]))
    return np.clip(np.rint(grey), 0, 255).astype(np.uint8)[..., None]


def images_to_tensor(images: torch.Tensor) -> torch.Tensor:
    """(..., C, H, W) uint8 (RGB or grey) -> float32 in [-1, 1]."""
    return images.float().div(127.5).sub(1.0)


def tensor_to_image(x: torch.Tensor) -> np.ndarray:
    """(3, H, W) or grey (1, H, W) float in [-1, 1] -> (H, W, 3) uint8 RGB (rounded, clipped; grey: R = G = B)."""
    x = ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    if x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    return x.permute(1, 2, 0).cpu().numpy()


def bits_tensor(ids: np.ndarray, num_classes: int) -> torch.Tensor:
    """(..., H, W) uint8 class ids -> (..., bits, H, W) float32 in {-1, +1}; ignore (255) becomes background."""
    ids = np.where(ids == IGNORE_INDEX, 0, ids)
    bits = torch.from_numpy(encode_bits(ids, num_classes))
    return bits.movedim(-1, -3).contiguous()


def onehot_tensor(ids: np.ndarray, num_classes: int) -> torch.Tensor:
    """(..., H, W) uint8 class ids -> (..., C, H, W) float32 one-hot; ignore (255) becomes background."""
    ids = torch.from_numpy(np.where(ids == IGNORE_INDEX, 0, ids).astype(np.int64))
    return torch.nn.functional.one_hot(ids, num_classes).movedim(-1, -3).float().contiguous()


def condition_maps(
    boxes: list[Box], size: tuple[int, int], cond: str, class_fill: str = "inside"
) -> tuple[np.ndarray, np.ndarray]:
    """The two maps of a box condition in an image of ``size`` = (H, W).

    ``basd``: BASD (H, W) float32 in [-1, 1] and C-BASD (H, W) uint8, its class map filled inside
    boxes or, ``class_fill="nearest"``, everywhere with the nearest box's class (BASD Algorithm 1,
    what ``encode-boxes --class-fill nearest`` caches); ``boxmask``: occupancy (+-1) and the box class map.
    """
    xyxy, classes = boxes_to_array(boxes)
    if cond == "basd":
        return basd_maps(xyxy, classes, *size, class_fill=class_fill)
    return boxmask_maps(xyxy, classes, *size)


def condition_tensor(
    boxes: list[Box], size: tuple[int, int], cond: str, num_classes: int, class_fill: str = "inside"
) -> torch.Tensor:
    """(1 + bits, H, W) float32 condition of ``boxes``; (0, H, W) for ``none``."""
    if cond == "none":
        return torch.zeros(0, *size)
    scalar, class_map = condition_maps(boxes, size, cond, class_fill)
    return torch.cat([torch.from_numpy(scalar)[None], bits_tensor(class_map, num_classes)])


class EncodedSet:
    """Samples encoded once and kept compactly in memory (uint8 images, masks and class maps,
    float16 BASD / occupancy); :meth:`batch` expands a batch to float tensors.

    Memory per image: H*W*(3 + 1 + 2 + 1) bytes (a 352x128 image: 315 kB). ``channels``: ``rgb``,
    ``grey`` (one luminance channel) or ``auto`` (grey when every image is grey, :func:`is_grey`);
    the choice is :attr:`image_channels`.
    """

    def __init__(
        self,
        samples: list[Sample],
        cond: str,
        target: str,
        num_classes: int,
        channels: str = "rgb",
        class_fill: str = "inside",
    ):
        if not samples:
            raise DatasetError("no samples to train on")
        self.cond, self.target, self.num_classes = cond, target, num_classes
        self.size = samples[0].size
        for s in samples:
            if s.size != self.size:
                raise DatasetError(
                    f"image is {s.size[1]}x{s.size[0]} but the first one is {self.size[1]}x{self.size[0]}: pass --size",
                    s.stem,
                )
            if target != "image" and s.mask is None:
                raise DatasetError(f"--target {target} needs masks, but this dataset has none", s.stem)
        self.stems = [s.stem for s in samples]
        self.boxes = [s.boxes for s in samples]
        images = np.stack([s.image for s in samples])
        self.image_channels = image_channels(channels, images)
        if self.image_channels == 1:
            images = to_grey(images)
        self.images = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
        if cond == "mask" and any(s.mask is None for s in samples):
            raise DatasetError("--cond mask needs masks, but this dataset has none", samples[0].stem)
        self.masks = (
            torch.from_numpy(np.stack([s.mask for s in samples])) if target != "image" or cond == "mask" else None
        )
        self.scalar = self.class_map = None
        if cond not in ("none", "mask"):
            maps = [condition_maps(s.boxes, self.size, cond, class_fill) for s in samples]
            self.scalar = torch.from_numpy(np.stack([m[0] for m in maps])).half()
            self.class_map = torch.from_numpy(np.stack([m[1] for m in maps]))

    def __len__(self) -> int:
        return len(self.stems)

    def targets(self, index: torch.Tensor) -> torch.Tensor:
        """(B, C_t, H, W) float32 targets in [-1, 1]."""
        parts = []
        if self.target in ("joint", "image"):
            parts.append(images_to_tensor(self.images[index]))
        if self.target in ("joint", "mask"):
            parts.append(bits_tensor(self.masks[index].numpy(), self.num_classes))
        return torch.cat(parts, dim=1)

    def conditions(self, index: torch.Tensor) -> torch.Tensor:
        """(B, C_c, H, W) float32 conditions (C_c = 0 for ``none``)."""
        if self.cond == "mask":
            return onehot_tensor(self.masks[index].numpy(), self.num_classes)
        if self.scalar is None:
            return torch.zeros(len(index), 0, *self.size)
        bits = bits_tensor(self.class_map[index].numpy(), self.num_classes)
        return torch.cat([self.scalar[index].float()[:, None], bits], dim=1)


def flip(x: torch.Tensor, horizontal: torch.Tensor, vertical: torch.Tensor) -> torch.Tensor:
    """Flip each item of a (B, C, H, W) batch where the (B,) bool tensors say so."""
    x = torch.where(horizontal[:, None, None, None], x.flip(-1), x)
    return torch.where(vertical[:, None, None, None], x.flip(-2), x)


def flip_boxes(boxes: list[Box], size: tuple[int, int], horizontal: bool, vertical: bool) -> list[Box]:
    """The boxes of an image of ``size`` = (H, W) after the same flips (half-open coordinates)."""
    height, width = size
    out = []
    for b in boxes:
        x0, x1 = (width - b.x_max, width - b.x_min) if horizontal else (b.x_min, b.x_max)
        y0, y1 = (height - b.y_max, height - b.y_min) if vertical else (b.y_min, b.y_max)
        out.append(Box(b.cls, x0, y0, x1, y1))
    return out
