"""Random geometric augmentation of condition masks (the Lemons thesis' semantic-image-synthesis
variant of All-Latent: real masks, randomly rotated, translated, scaled and flipped, condition the
image generator, so the synthetic set does not merely repeat the training masks).

One affine warp per mask with nearest-neighbour interpolation: every output pixel copies an input
pixel or is background (0) where the warp leaves the image, so no new class ids appear.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class MaskAugment:
    """Ranges of the random transform: rotation in degrees (+-), translation as a fraction of the
    size (+-), scale factor (min, max), and the probability of each flip."""

    rotation: float = 20.0
    translation: float = 0.1
    scale: tuple[float, float] = (0.8, 1.2)
    flip: float = 0.5

    def matrix(self, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
        """(2, 3) affine matrix for an image of ``size`` = (H, W): flips, then rotation + scale about the centre, then
        shift."""
        h, w = size
        angle = rng.uniform(-self.rotation, self.rotation)
        scale = rng.uniform(*self.scale)
        shift = rng.uniform(-self.translation, self.translation, 2) * (w, h)
        flip_x, flip_y = rng.random(2) < self.flip
        m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, scale)
        m[:, 2] += shift
        f = np.array(
            [
                [-1.0 if flip_x else 1.0, 0, (w - 1) if flip_x else 0],
                [0, -1.0 if flip_y else 1.0, (h - 1) if flip_y else 0],
                [0, 0, 1],
            ]
        )
        return (np.vstack([m, [0, 0, 1]]) @ f)[:2]

    def __call__(self, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(H, W) uint8 class ids -> (H, W) uint8, warped with nearest interpolation, background outside."""
        h, w = mask.shape
        return cv2.warpAffine(
            mask,
            self.matrix((h, w), rng),
            (w, h),
            flags=cv2.INTER_NEAREST,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )
