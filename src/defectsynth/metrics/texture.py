"""Texture statistics: does the synthetic surface look like the real one? (no pretrained network needed)

Every image is read as RGB uint8 (grey datasets have R = G = B) and turned into the grey image
``g`` = cv2 RGB2GRAY (0.299 R + 0.587 G + 0.114 B, uint8; exact for grey images). Per set and region:

- ``laplacian_var``: mean over images of var(Laplacian(g)), the 4-neighbour kernel
  [[0, 1, 0], [1, -4, 1], [0, 1, 0]] (``cv2.Laplacian`` ksize 1, float64, reflected border);
  0 for a flat image, high for sharp, noisy texture.
- ``hf_share``: mean over images of the share of spectral power of ``g - mean(g)`` at radial
  frequency sqrt(fx^2 + fy^2) > ``cutoff`` cycles/pixel (``np.fft.fftfreq``); the sum of the
  radially averaged power spectrum above the cut-off over its sum. 0 for a flat image.
- ``mean`` / ``std``: per channel (R, G, B), over all pixels of the set, 0..255.
- grey-level histograms (256 bins, all pixels of the set, normalised to sum 1): ``hist_l1`` =
  sum |p - q| (0 = same, 2 = disjoint) and ``wasserstein`` = sum |CDF_p - CDF_q|, the earth mover's
  distance in grey levels (shifting every level by k gives k).

Regions: ``image`` (whole images) and ``boxes`` (the crop of each box of each image; boxes with a
side under :data:`MIN_CROP` pixels are skipped and counted). The report gives both raw values and
synthetic / real ratios: ratios near 1 and distances near 0 mean the synthetic texture matches.
Compare sets of the same image size: the Laplacian and the spectrum depend on the resolution.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import cv2
import numpy as np

from defectsynth.errors import DatasetError, OptionError
from defectsynth.formats.dataset import Dataset
from defectsynth.progress import track

logger = logging.getLogger(__name__)

DEFAULT_CUTOFF = 0.25
MIN_CROP = 4
REGIONS = ("image", "boxes")
CHANNELS = ("R", "G", "B")


def grey(rgb: np.ndarray) -> np.ndarray:
    """(H, W) uint8 grey image of (H, W, 3) uint8 RGB."""
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


def laplacian_variance(grey_image: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of an (H, W) grey image (reflected border)."""
    return float(cv2.Laplacian(grey_image.astype(np.float64), cv2.CV_64F, ksize=1).var())


def high_frequency_share(grey_image: np.ndarray, cutoff: float = DEFAULT_CUTOFF) -> float:
    """Share of the power of ``g - mean(g)`` at radial frequency > ``cutoff`` cycles/pixel; 0 when flat."""
    g = grey_image.astype(np.float64)
    power = np.abs(np.fft.fft2(g - g.mean())) ** 2
    fy, fx = np.meshgrid(np.fft.fftfreq(g.shape[0]), np.fft.fftfreq(g.shape[1]), indexing="ij")
    total = power.sum()
    if total <= 1e-12 * g.size:
        return 0.0
    return float(power[np.hypot(fx, fy) > cutoff].sum() / total)


def histogram_distances(p_counts: np.ndarray, q_counts: np.ndarray) -> dict[str, float | None]:
    """``{"hist_l1", "wasserstein"}`` between two 256-bin grey-level histograms (counts); None when one is empty."""
    if p_counts.sum() == 0 or q_counts.sum() == 0:
        return {"hist_l1": None, "wasserstein": None}
    p, q = p_counts / p_counts.sum(), q_counts / q_counts.sum()
    return {"hist_l1": float(np.abs(p - q).sum()), "wasserstein": float(np.abs(np.cumsum(p) - np.cumsum(q)).sum())}


@dataclass
class TextureSums:
    """Running sums of one set and region: per-image statistics, per-channel moments, grey histogram."""

    cutoff: float = DEFAULT_CUTOFF
    images: int = 0
    skipped: int = 0
    laplacian: float = 0.0
    hf: float = 0.0
    pixels: int = 0
    channel_sum: np.ndarray = field(default_factory=lambda: np.zeros(3))
    channel_sq: np.ndarray = field(default_factory=lambda: np.zeros(3))
    hist: np.ndarray = field(default_factory=lambda: np.zeros(256, np.int64))

    def add(self, rgb: np.ndarray) -> None:
        """Add one (H, W, 3) uint8 RGB image or crop."""
        g = grey(rgb)
        self.images += 1
        self.laplacian += laplacian_variance(g)
        self.hf += high_frequency_share(g, self.cutoff)
        values = rgb.reshape(-1, 3).astype(np.float64)
        self.pixels += len(values)
        self.channel_sum += values.sum(0)
        self.channel_sq += (values**2).sum(0)
        self.hist += np.bincount(g.ravel(), minlength=256)

    def stats(self) -> dict:
        """JSON-ready raw values (None where the set is empty)."""
        if not self.images:
            return {"images": 0, "laplacian_var": None, "hf_share": None, "mean": None, "std": None}
        mean = self.channel_sum / self.pixels
        std = np.sqrt(np.maximum(self.channel_sq / self.pixels - mean**2, 0.0))
        return {
            "images": self.images,
            "laplacian_var": self.laplacian / self.images,
            "hf_share": self.hf / self.images,
            "mean": dict(zip(CHANNELS, mean.tolist())),
            "std": dict(zip(CHANNELS, std.tolist())),
        }


def texture_sums(
    dataset: Dataset, stems: list[str], cutoff: float = DEFAULT_CUTOFF, progress: bool = False
) -> dict[str, TextureSums]:
    """``{"image": sums, "boxes": sums}`` over ``stems`` of ``dataset`` (boxes: one crop per box)."""
    sums = {region: TextureSums(cutoff) for region in REGIONS}
    for stem in track(stems, total=len(stems), description=f"texture {dataset.root.name}", enabled=progress):
        sample = dataset.read(stem)
        sums["image"].add(sample.image)
        for b in sample.boxes:
            if min(b.x_max - b.x_min, b.y_max - b.y_min) < MIN_CROP:
                sums["boxes"].skipped += 1
            else:
                sums["boxes"].add(sample.image[b.y_min : b.y_max, b.x_min : b.x_max])
    return sums


def _ratio(synthetic: float | None, real: float | None) -> float | None:
    return None if synthetic is None or not real else synthetic / real


def region_report(real: TextureSums, synthetic: TextureSums) -> dict:
    """Raw values of both sets, synthetic / real ratios and histogram distances of one region."""
    r, s = real.stats(), synthetic.stats()
    ratio = {key: _ratio(s[key], r[key]) for key in ("laplacian_var", "hf_share")}
    for key in ("mean", "std"):
        ratio[key] = None if r[key] is None or s[key] is None else {c: _ratio(s[key][c], r[key][c]) for c in CHANNELS}
    return {
        "real": {**r, "skipped": real.skipped},
        "synthetic": {**s, "skipped": synthetic.skipped},
        "ratio": ratio,
        "distance": histogram_distances(synthetic.hist, real.hist),
    }


def check_cutoff(cutoff: float) -> float:
    if not 0 < cutoff < 0.5:
        raise OptionError(
            f"--hf-cutoff: a radial frequency in cycles/pixel between 0 and 0.5 (exclusive), got {cutoff}"
        )
    return float(cutoff)


def texture_report(
    real: Dataset,
    real_stems: list[str],
    synthetic: Dataset,
    synthetic_stems: list[str],
    cutoff: float = DEFAULT_CUTOFF,
    progress: bool = False,
) -> dict:
    """``{"texture": {"hf_cutoff": c, "image": region report, "boxes": region report}}`` (see :func:`region_report`)."""
    cutoff = check_cutoff(cutoff)
    for ds, stems in ((real, real_stems), (synthetic, synthetic_stems)):
        if not stems:
            raise DatasetError("texture: the selection has no images", ds.root)
    real_sums = texture_sums(real, real_stems, cutoff, progress)
    syn_sums = texture_sums(synthetic, synthetic_stems, cutoff, progress)
    real_size, syn_size = real.read(real_stems[0]).image.shape[:2], synthetic.read(synthetic_stems[0]).image.shape[:2]
    if real_size != syn_size:
        logger.warning(
            "texture: real images are %s, synthetic %s (H, W); texture statistics depend on the resolution",
            real_size,
            syn_size,
        )
    return {
        "texture": {
            "hf_cutoff": cutoff,
            **{region: region_report(real_sums[region], syn_sums[region]) for region in REGIONS},
        }
    }
