"""Context-conditioned training (``train --context``): defects painted into real surroundings.

The network of a context run sees, besides the noisy target ``[RGB | analog-bit mask]`` and the box
condition, the known image outside the *region* and the region itself (the context channels,
concatenated after the box condition)::

    input = [x_t | x_0 estimate (self-conditioning) | box condition | known image | region]

- region (H, W) bool: the union of the boxes, each dilated by ``margin`` pixels (clipped to the
  window); a window without boxes gets one random rectangle as its region (it learns to fill in
  plain surface).
- known image (C, H, W) float32: the image in [-1, 1] (RGB, or grey for a grey run) with the region
  blanked to 0; region channel: +1 inside, -1 outside.
- The loss counts only the pixels inside the region (the rest is known; :func:`region_of`).

``crop`` N: every step cuts N x N windows at native resolution, one item per box of the training
images (the box inside the window with its margin, at a random offset) plus one defect-free window
for every four (``FREE_SHARE``: a random window of a random image); without ``crop`` the window is
the whole (resized) image. The windows of a step are seeded by (seed, step, item), so a resumed run
and N processes repeat the run of one process, as for every other run.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch

from defectsynth.data.model import Box, Sample
from defectsynth.diffusion.conditioning import bits_tensor, condition_tensor, image_channels, images_to_tensor, to_grey
from defectsynth.errors import DatasetError, OptionError

logger = logging.getLogger(__name__)

CONTEXT_MARGIN = 4
# --crop: warn when more than this share of the training boxes (with the margin) do not fit a window.
LARGE_BOX_SHARE = 0.1
# Share of defect-free windows among the training windows of a --crop run.
FREE_SHARE = 0.2


def context_channels(image_channels: int) -> int:
    """Channels of the context: the known image (1 or 3) and the region."""
    return image_channels + 1


def check_context(
    cond: str, target: str, crop: int | None, margin: int, size: str | None, latent, drop_rate: float
) -> None:
    """The option combinations of ``train --context`` (and of ``--crop``, which needs it)."""
    if crop is not None and crop < 8:
        raise OptionError(f"--crop: must be >= 8, got {crop}")
    if margin < 0:
        raise OptionError(f"--context-margin: must be >= 0, got {margin}")
    if cond not in ("basd", "boxmask") or target != "joint":
        raise OptionError(
            f"--context needs --cond basd or boxmask and --target joint, got --cond {cond} --target {target}"
        )
    if crop is not None and size is not None:
        raise OptionError(
            "--size cannot be used with --crop: the windows are cut at native resolution (leave --size out)"
        )
    if latent:
        raise OptionError("--context cannot be used with --latent")
    if drop_rate > 0:
        raise OptionError(
            "--drop-rate cannot be used with --context: the null condition would also blank the known image"
        )


def dilate(box: Box, margin: int, height: int, width: int) -> tuple[int, int, int, int]:
    """``box`` grown by ``margin`` on every side, clipped to the image: (x0, y0, x1, y1) half-open."""
    return (
        max(0, box.x_min - margin),
        max(0, box.y_min - margin),
        min(width, box.x_max + margin),
        min(height, box.y_max + margin),
    )


def check_crop_fits(boxes: list[Box], crop: int, margin: int) -> None:
    """One warning when more than :data:`LARGE_BOX_SHARE` of ``boxes``, grown by ``margin``, do not fit a
    ``crop`` window (their windows show no surroundings), with the crop that fits 90% of them."""
    sides = np.array([max(b.x_max - b.x_min, b.y_max - b.y_min) + 2 * margin for b in boxes])
    if not len(sides) or np.mean(sides > crop) <= LARGE_BOX_SHARE:
        return
    fits = 8 * math.ceil(float(np.percentile(sides, 90)) / 8)
    logger.warning(
        "--crop %d: %d of %d training boxes, grown by the %d px margin, do not fit a window: their windows show "
        "none of the image around them, and sample --onto paints them without context; --crop %d fits 90%% of them",
        crop,
        int(np.sum(sides > crop)),
        len(sides),
        margin,
        fits,
    )


def region_mask(boxes: list[Box], size: tuple[int, int], margin: int) -> np.ndarray:
    """(H, W) bool: the union of ``boxes`` dilated by ``margin`` (size = (H, W))."""
    region = np.zeros(size, bool)
    for box in boxes:
        x0, y0, x1, y1 = dilate(box, margin, *size)
        region[y0:y1, x0:x1] = True
    return region


def boxes_in_window(boxes: list[Box], x0: int, y0: int, width: int, height: int) -> list[Box]:
    """``boxes`` that meet the window (x0, y0, width, height), clipped to it, in window coordinates."""
    out = []
    for b in boxes:
        x_min, y_min = max(b.x_min, x0) - x0, max(b.y_min, y0) - y0
        x_max, y_max = min(b.x_max, x0 + width) - x0, min(b.y_max, y0 + height) - y0
        if x_max > x_min and y_max > y_min:
            out.append(Box(b.cls, x_min, y_min, x_max, y_max))
    return out


def context_tensor(image: np.ndarray, region: np.ndarray) -> torch.Tensor:
    """(C + 1, H, W) float32: the (H, W, C) uint8 image in [-1, 1] with ``region`` blanked to 0, and the region as
    +-1."""
    known = images_to_tensor(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1))
    inside = torch.from_numpy(region)
    known = known.masked_fill(inside[None], 0.0)
    return torch.cat([known, inside[None].float() * 2.0 - 1.0])


def region_of(cond: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) float32 loss weights of a context run's (flipped) condition batch: its last
    channel (the region, +-1) as 1 inside, 0 outside."""
    return (cond[:, -1:] > 0).float()


def random_rectangle(rng: np.random.Generator, height: int, width: int) -> Box:
    """A rectangle of 1/8 to 1/2 of the window's sides at a random place (class 0: a region without a defect)."""
    h = int(rng.integers(max(1, height // 8), max(2, height // 2) + 1))
    w = int(rng.integers(max(1, width // 8), max(2, width // 2) + 1))
    y, x = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
    return Box(0, x, y, x + w, y + h)


def window_offset(rng: np.random.Generator, lo: int, hi: int, limit: int) -> int:
    """A random start in [lo, hi] (either order), clipped to [0, limit]."""
    a, b = sorted((lo, hi))
    return int(np.clip(rng.integers(a, b + 1), 0, limit))


class ContextSet:
    """Training data of a context run: the images at native resolution (uint8, any sizes with
    ``crop``), their masks and boxes; :meth:`cut` draws a step's windows and returns the batch.

    Items: with ``crop``, one per box (image, box index) and ``FREE_SHARE`` defect-free windows
    (image, None); without, one per image (the whole image is the window).
    """

    def __init__(
        self,
        samples: list[Sample],
        cond: str,
        num_classes: int,
        channels: str,
        crop: int | None,
        margin: int,
        seed: int,
    ):
        if not samples:
            raise DatasetError("no samples to train on")
        self.cond, self.target, self.num_classes, self.crop, self.margin, self.seed = (
            cond,
            "joint",
            num_classes,
            crop,
            margin,
            seed,
        )
        for s in samples:
            if s.mask is None:
                raise DatasetError("--context needs masks, but this dataset has none", s.stem)
            if crop is None and s.size != samples[0].size:
                raise DatasetError(
                    f"image is {s.size[1]}x{s.size[0]} but the first one is "
                    f"{samples[0].size[1]}x{samples[0].size[0]}: pass --size or --crop",
                    s.stem,
                )
            if crop is not None and min(s.size) < crop:
                raise DatasetError(f"image is {s.size[1]}x{s.size[0]}, smaller than --crop {crop}", s.stem)
        self.stems = [s.stem for s in samples]
        self.boxes = [s.boxes for s in samples]
        if crop is not None:
            check_crop_fits([b for boxes in self.boxes for b in boxes], crop, margin)
        self.masks = [s.mask for s in samples]
        self.image_channels = image_channels(channels, (s.image for s in samples))
        grey = self.image_channels == 1
        self.images = [to_grey(s.image[None])[0] if grey else s.image for s in samples]
        self.size = (crop, crop) if crop is not None else samples[0].size
        if crop is None:
            self.items: list[tuple[int, int | None]] = [(i, None) for i in range(len(samples))]
        else:
            boxed = [(i, j) for i, s in enumerate(samples) for j in range(len(s.boxes))]
            free = max(1, round(len(boxed) * FREE_SHARE / (1 - FREE_SHARE))) if boxed else len(samples)
            self.items = boxed + [(k % len(samples), None) for k in range(free)]

    def __len__(self) -> int:
        return len(self.items)

    def window(self, item: int, rng: np.random.Generator) -> tuple[int, int]:
        """(x0, y0) of the window of ``item``: around its box (box and margin inside when they fit), else anywhere."""
        i, j = self.items[item]
        (height, width), (n_h, n_w) = self.images[i].shape[:2], self.size
        if j is None:
            return int(rng.integers(0, width - n_w + 1)), int(rng.integers(0, height - n_h + 1))
        b, m = self.boxes[i][j], self.margin
        return window_offset(rng, b.x_max + m - n_w, b.x_min - m, width - n_w), window_offset(
            rng, b.y_max + m - n_h, b.y_min - m, height - n_h
        )

    def cut(self, index: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch of ``index`` at ``step``: targets (B, C + bits, h, w) and conditions
        (B, 1 + bits + C + 1, h, w): box maps, known image, region."""
        from defectsynth.seeds import derived_seed

        targets, conds = [], []
        n_h, n_w = self.size
        for item in index.tolist():
            rng = np.random.default_rng(derived_seed(self.seed, step, item, 0xC0417))
            x0, y0 = self.window(item, rng)
            i = self.items[item][0]
            image = self.images[i][y0 : y0 + n_h, x0 : x0 + n_w]
            mask = self.masks[i][y0 : y0 + n_h, x0 : x0 + n_w]
            boxes = boxes_in_window(self.boxes[i], x0, y0, n_w, n_h)
            region = region_mask(boxes or [random_rectangle(rng, n_h, n_w)], (n_h, n_w), self.margin)
            image_t = images_to_tensor(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1))
            targets.append(torch.cat([image_t, bits_tensor(mask, self.num_classes)]))
            conds.append(
                torch.cat(
                    [condition_tensor(boxes, (n_h, n_w), self.cond, self.num_classes), context_tensor(image, region)]
                )
            )
        return torch.stack(targets), torch.stack(conds)
