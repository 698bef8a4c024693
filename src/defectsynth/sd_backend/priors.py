"""Visual priors and Visual Prior Blending (Che et al., VOC paper, Section 3.2.2, equation 4).

A *visual prior* is the condition image a controllable diffusion model (T2I-Adapter, ControlNet)
is steered by: white structure lines on black, here as an (H, W) float32 map in [0, 1].

- ``canny``: OpenCV Canny edges of the RGB image (thresholds 100 / 200, as controlnet_aux's
  CannyDetector used with the public canny adapters).
- ``lineart``: the informative-drawings line-art generator (Chan et al., 2022) used by
  controlnet_aux's LineartDetector, see :mod:`defectsynth.sd_backend.detectors`.
- ``sketch``: PiDiNet edges (Su et al., 2021) thresholded at 0.5, as controlnet_aux's
  PidiNetDetector with ``apply_filter=True`` for the public sketch adapter.

The mask prior :func:`mask_prior` is the edge map of the class regions of the real mask, and
:func:`blend_priors` is equation 4: ``V* = w1 * V_image + w2 * V_mask``, clipped to [0, 1].
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from defectsynth.data.model import IGNORE_INDEX
from defectsynth.errors import OptionError

PRIORS = ("canny", "lineart", "sketch")
DEFAULT_BLEND = (0.7, 0.9)  # the paper's best trade-off scales (Table 7): w1 = 0.7, w2 = 0.9


def canny_prior(image: np.ndarray, low: int = 100, high: int = 200) -> np.ndarray:
    """Canny edges of an (H, W, 3) uint8 RGB image as (H, W) float32 in {0, 1}."""
    return (cv2.Canny(np.ascontiguousarray(image), low, high) > 0).astype(np.float32)


def mask_prior(mask: np.ndarray) -> np.ndarray:
    """Edges of the class regions of an (H, W) uint8 class-id mask as (H, W) float32 in {0, 1}.

    A pixel is an edge when its 3x3 neighbourhood holds more than one class id (a morphological
    gradient of the label map), so every boundary is drawn two pixels wide, one on each side.
    Ignore pixels (255) count as background: VOC's void band is the outline of the object.
    """
    labels = np.where(mask == IGNORE_INDEX, 0, mask).astype(np.uint8)
    kernel = np.ones((3, 3), np.uint8)
    grown = cv2.dilate(labels, kernel, borderType=cv2.BORDER_REPLICATE)
    shrunk = cv2.erode(labels, kernel, borderType=cv2.BORDER_REPLICATE)
    return (grown != shrunk).astype(np.float32)


def parse_blend(text: str | tuple[float, float] | list[float]) -> tuple[float, float]:
    """``"0.7,0.9"`` (or a pair) -> ``(w1, w2)``; each weight must be a finite number >= 0."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    try:
        weights = tuple(float(p) for p in parts)
    except ValueError:
        raise OptionError(f"--blend: expected two numbers 'w1,w2' (e.g. 0.7,0.9), got {text!r}") from None
    if len(weights) != 2 or not all(np.isfinite(w) and w >= 0 for w in weights):
        raise OptionError(f"--blend: expected two numbers 'w1,w2' >= 0 (e.g. 0.7,0.9), got {text!r}")
    return weights  # type: ignore[return-value]


def blend_priors(
    image_prior: np.ndarray, mask_edges: np.ndarray, blend: tuple[float, float] = DEFAULT_BLEND
) -> np.ndarray:
    """Equation 4: ``V* = w1 * V_image + w2 * V_mask`` on (H, W) maps in [0, 1], clipped to [0, 1]."""
    w1, w2 = blend
    return np.clip(w1 * image_prior.astype(np.float32) + w2 * mask_edges.astype(np.float32), 0.0, 1.0)


def to_condition_image(prior: np.ndarray) -> np.ndarray:
    """An (H, W) prior in [0, 1] as the (H, W, 3) uint8 RGB image the adapter / ControlNet reads."""
    gray = np.rint(np.clip(prior, 0.0, 1.0) * 255.0).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)


class PriorDetector:
    """Computes one kind of image prior; ``__call__(image (H, W, 3) uint8) -> (H, W) float32 in [0, 1]``.

    ``weights_dir`` holds the detector's safetensors for the learned priors (see
    :mod:`defectsynth.sd_backend.detectors`); canny needs none.
    """

    def __init__(self, prior: str = "canny", weights_dir: str | Path | None = None, device: str = "cpu"):
        if prior not in PRIORS:
            raise OptionError(f"--prior: unknown prior {prior!r}; choose one of {', '.join(PRIORS)}")
        self.prior = prior
        self._net = None
        if prior != "canny":
            import defectsynth.sd_backend.detectors as detectors

            self._net = (detectors.load_lineart if prior == "lineart" else detectors.load_sketch)(
                weights_dir, device=device
            )

    def __call__(self, image: np.ndarray) -> np.ndarray:
        if self.prior == "canny":
            return canny_prior(image)
        import defectsynth.sd_backend.detectors as detectors

        return (detectors.run_lineart if self.prior == "lineart" else detectors.run_sketch)(self._net, image)
