"""LPIPS between each synthetic image and the real image whose condition produced it (BASD paper, Table 1).

Pairing uses the synthetic dataset's provenance (``dataset.json``, written by ``sample``):
``source["condition_of"] = {"<synthetic stem>": "<condition stem>"}`` names, for each synthetic
image, the stem of the real image whose boxes/mask conditioned it; the real image with that stem is
read from ``--real``. Without ``condition_of`` the pair is the real image of the same stem. Paired
images must have the same size.

Networks are torchmetrics' LPIPS v0.1 (AlexNet, VGG-16, SqueezeNet backbones with the learned
linear heads of Zhang et al.). LPIPS expects inputs in [-1, 1]: uint8 images are mapped with
x / 127.5 - 1 (the public BASD code fed [0, 1] images, a bug we do not copy). Reported per backbone:
mean and std over the pairs.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from defectsynth.data.files import read_image
from defectsynth.errors import DatasetError
from defectsynth.formats.dataset import Dataset
from defectsynth.metrics.fid_kid import batches_of_equal_size, to_uint8_tensor
from defectsynth.progress import track

logger = logging.getLogger(__name__)

MIN_SIZE = 32  # AlexNet's pooling needs at least this many pixels per side


def to_lpips_range(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) uint8 0..255 -> float32 in [-1, 1], the range LPIPS expects."""
    return images.to(torch.float32) / 127.5 - 1.0


def condition_pairs(synthetic: Dataset, real: Dataset, stems: list[str]) -> list[tuple[str, str]]:
    """(synthetic stem, real stem) for ``stems`` of ``synthetic``, through ``source["condition_of"]`` when present."""
    source = synthetic.manifest.source
    condition_of = source.get("condition_of")
    conditions = source.get("conditions") or {}
    if isinstance(conditions, dict) and conditions.get("dataset"):
        named = Path(str(conditions["dataset"])).expanduser()
        if not named.is_absolute():
            named = synthetic.root / named
        if named.resolve() != real.root.resolve():
            logger.warning(
                "%s was conditioned on %s, but --real is %s", synthetic.root, conditions["dataset"], real.root
            )
    if condition_of is None:
        return [(stem, stem) for stem in stems]
    if not isinstance(condition_of, dict):
        raise DatasetError(
            "source.condition_of must map synthetic stems to condition stems", synthetic.root / "dataset.json"
        )
    pairs = []
    for stem in stems:
        if stem not in condition_of:
            raise DatasetError(
                f"source.condition_of has no entry for synthetic image {stem!r}", synthetic.root / "dataset.json"
            )
        pairs.append((stem, str(condition_of[stem])))
    return pairs


def _read_pair(synthetic: Dataset, real: Dataset, pair: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    a_path, b_path = synthetic.image_path(pair[0]), real.image_path(pair[1])
    a, b = read_image(a_path), read_image(b_path)
    if a.shape != b.shape:
        raise DatasetError(
            f"synthetic image {a_path} is {a.shape[1]}x{a.shape[0]} but its real image {b_path} is "
            f"{b.shape[1]}x{b.shape[0]}"
        )
    if min(a.shape[:2]) < MIN_SIZE:
        raise DatasetError(
            f"lpips needs images of at least {MIN_SIZE}x{MIN_SIZE}, got {a.shape[1]}x{a.shape[0]}", a_path
        )
    return a, b


@torch.no_grad()
def lpips_distances(
    synthetic: Dataset,
    real: Dataset,
    pairs: list[tuple[str, str]],
    nets: dict[str, nn.Module],
    batch_size: int = 32,
    device: str = "cpu",
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """{net name: (len(pairs),) LPIPS distances}, each pair read once and scored by every net."""
    scores: dict[str, list[np.ndarray]] = {name: [] for name in nets}
    images = (_read_pair(synthetic, real, pair) for pair in pairs)
    bar = track(images, total=len(pairs), description="lpips", enabled=progress)
    for batch in batches_of_equal_size(bar, batch_size, lambda ab: ab[0].shape):
        a = to_lpips_range(to_uint8_tensor([ab[0] for ab in batch])).to(device)
        b = to_lpips_range(to_uint8_tensor([ab[1] for ab in batch])).to(device)
        for name, net in nets.items():
            scores[name].append(net(a, b).reshape(-1).double().cpu().numpy())
    return {name: np.concatenate(values) for name, values in scores.items()}


def lpips_report(distances: dict[str, np.ndarray]) -> dict[str, dict]:
    """JSON-ready ``{"lpips": {"alex": {"mean", "std", "pairs"}, ...}}``."""
    return {
        "lpips": {
            name: {"mean": float(d.mean()), "std": float(d.std()), "pairs": int(d.size)}
            for name, d in distances.items()
        }
    }
