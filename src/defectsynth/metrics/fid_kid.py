"""FID and KID between two image sets at the four InceptionV3 depths of the BASD paper's Table 1.

Features come from torch-fidelity's FID InceptionV3 (the TF 2015-12-05 graph every published FID
uses, fed uint8 0..255 images that it resizes to 299 with TF1-compatible bilinear interpolation):
64 (first max-pool), 192 (second max-pool), 768 (Mixed_6e) and 2048 (final pool). One forward
pass gives all requested sizes. The maths are torchmetrics' FrechetInceptionDistance and
KernelInceptionDistance on those features (float64):

- FID = ||mu_r - mu_s||^2 + Tr(S_r + S_s - 2 (S_r S_s)^(1/2)) (Heusel et al.).
- KID = unbiased MMD^2 with the cubic polynomial kernel (x.y / d + 1)^3 (Binkowski et al.), averaged
  over ``subsets`` random subsets of ``subset_size`` images (the usual 100 x 1000, the size capped
  at the smaller set), reported as mean and std; the subsets are drawn from ``seed``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

import numpy as np
import torch
from torch import nn

from defectsynth.data.files import read_image
from defectsynth.formats.dataset import Dataset
from defectsynth.progress import track

FEATURE_SIZES = (64, 192, 768, 2048)
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000

T = TypeVar("T")


def batches_of_equal_size(items: Iterable[T], batch_size: int, size_of: Callable[[T], tuple]) -> Iterator[list[T]]:
    """Consecutive batches of at most ``batch_size`` items that share ``size_of(item)`` (images of one size stack)."""
    batch: list[T] = []
    for item in items:
        if batch and (len(batch) == batch_size or size_of(item) != size_of(batch[0])):
            yield batch
            batch = []
        batch.append(item)
    if batch:
        yield batch


def to_uint8_tensor(images: Sequence[np.ndarray]) -> torch.Tensor:
    """(H, W, 3) uint8 RGB images of one size -> (N, 3, H, W) uint8 tensor (what the FID Inception expects)."""
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


@torch.no_grad()
def inception_features(
    dataset: Dataset,
    stems: list[str],
    net: nn.Module,
    features: Sequence[int],
    batch_size: int = 32,
    device: str = "cpu",
    progress: bool = False,
) -> dict[int, torch.Tensor]:
    """{feature size: (N, size) float64 features} of the images ``stems`` of ``dataset``, in stem order."""
    out: dict[int, list[torch.Tensor]] = {f: [] for f in features}
    images = (read_image(dataset.image_path(stem)) for stem in stems)
    bar = track(images, total=len(stems), description=f"inception {dataset.root.name}", enabled=progress)
    for batch in batches_of_equal_size(bar, batch_size, lambda image: image.shape):
        outputs = net(to_uint8_tensor(batch).to(device))
        for size, value in zip(features, outputs):
            out[size].append(value.detach().to("cpu", torch.float64))
    return {size: torch.cat(values) for size, values in out.items()}


class _Precomputed(nn.Identity):
    """Lets torchmetrics' FID/KID take features we computed once, instead of running their own Inception."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features


def fid_from_features(real: torch.Tensor, synthetic: torch.Tensor) -> float:
    """FID between (N, d) and (M, d) feature sets (N, M >= 2), computed in float64 by torchmetrics."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    metric = FrechetInceptionDistance(feature=_Precomputed(real.shape[1])).set_dtype(torch.float64)
    metric.update(real.double(), real=True)
    metric.update(synthetic.double(), real=False)
    return float(metric.compute())


def kid_from_features(
    real: torch.Tensor,
    synthetic: torch.Tensor,
    subsets: int = KID_SUBSETS,
    subset_size: int = KID_SUBSET_SIZE,
    seed: int = 0,
) -> tuple[float, float, int]:
    """(mean, std, subset size used) of KID over ``subsets`` random subsets, size capped at the smaller set (>= 2)."""
    from torchmetrics.image.kid import KernelInceptionDistance

    size = min(subset_size, len(real), len(synthetic))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
        metric = KernelInceptionDistance(feature=_Precomputed(real.shape[1]), subsets=subsets, subset_size=size)
    metric.update(real.double(), real=True)
    metric.update(synthetic.double(), real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std), size


def fid_kid_report(
    real: dict[int, torch.Tensor], synthetic: dict[int, torch.Tensor], names: Sequence[str], seed: int = 0
) -> dict[str, dict]:
    """JSON-ready ``{"fid": {"64": value, ...}, "kid": {"64": {"mean", "std", "subsets", "subset_size"}, ...}}``."""
    report: dict[str, dict] = {}
    if "fid" in names:
        report["fid"] = {str(f): fid_from_features(real[f], synthetic[f]) for f in real}
    if "kid" in names:
        report["kid"] = {}
        for f in real:
            mean, std, size = kid_from_features(real[f], synthetic[f], seed=seed)
            report["kid"][str(f)] = {"mean": mean, "std": std, "subsets": KID_SUBSETS, "subset_size": size}
    return report
