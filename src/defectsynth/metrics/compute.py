"""``compute_metrics``: the measurements the papers use to judge synthetic data, on dataset folders.

| name | needs | paper |
|---|---|---|
| sae, ebr | --synthetic with masks (generated) and boxes (conditions) | BASD eqs. 5, 6 |
| fid, kid | --real and --synthetic images | BASD Table 1 (InceptionV3 @ 64/192/768/2048) |
| lpips | --real and --synthetic, paired through the synthetic provenance | BASD Table 1 |
| entropy, cir | --synthetic and/or --real (and both together) | VOC paper Table 4 |
| texture | --real and --synthetic images (and their boxes) | none: high-frequency energy, colour, grey levels |

``split`` selects the stems of that split of ``real`` (the reference set), or of ``synthetic``
when no ``real`` is given; the synthetic dataset is otherwise used whole.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from defectsynth.checks import check_at_least
from defectsynth.data.files import read_json
from defectsynth.devices import pick_device
from defectsynth.errors import DatasetError, OptionError
from defectsynth.formats.dataset import Dataset, check_same_classes
from defectsynth.metrics.distribution import distribution_report, images_per_class
from defectsynth.metrics.fid_kid import FEATURE_SIZES, fid_kid_report, inception_features
from defectsynth.metrics.lpips import condition_pairs, lpips_distances, lpips_report
from defectsynth.metrics.sae_ebr import dataset_sae_ebr_counts, sae_ebr_report
from defectsynth.metrics.texture import DEFAULT_CUTOFF, check_cutoff, texture_report
from defectsynth.metrics.weights import LPIPS_NETS, load_inception, load_lpips

logger = logging.getLogger(__name__)

METRIC_NAMES = ("sae", "ebr", "fid", "kid", "lpips", "entropy", "cir", "texture")
_NEEDS_BOTH = ("fid", "kid", "lpips", "texture")


def _parse_list(value: str | Sequence[Any], option: str) -> list[str]:
    items = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    items = [item.strip() for item in items if str(item).strip()]
    if not items:
        raise OptionError(f"{option}: give at least one value")
    return list(dict.fromkeys(items))


def parse_names(names: str | Sequence[str]) -> list[str]:
    """Metric names (a list, or comma-separated), checked against :data:`METRIC_NAMES`."""
    parsed = [n.lower() for part in ([names] if isinstance(names, str) else names) for n in _parse_list(part, "NAME")]
    unknown = [n for n in parsed if n not in METRIC_NAMES]
    if unknown:
        raise OptionError(f"unknown metric {unknown[0]!r}; choose from: {', '.join(METRIC_NAMES)}")
    return list(dict.fromkeys(parsed))


def parse_features(features: str | Sequence[int]) -> list[int]:
    """InceptionV3 feature sizes (``"64,2048"`` or ints), each one of 64, 192, 768, 2048."""
    parsed = []
    for item in _parse_list(features, "--features"):
        if not item.isdigit() or int(item) not in FEATURE_SIZES:
            raise OptionError(
                f"--features: {item!r} is not an InceptionV3 feature size; choose from "
                f"{', '.join(map(str, FEATURE_SIZES))}"
            )
        parsed.append(int(item))
    return parsed


def parse_nets(nets: str | Sequence[str]) -> list[str]:
    """LPIPS backbones (``"alex,vgg"`` or names), each one of alex, vgg, squeeze."""
    parsed = [n.lower() for n in _parse_list(nets, "--nets")]
    unknown = [n for n in parsed if n not in LPIPS_NETS]
    if unknown:
        raise OptionError(f"--nets: unknown backbone {unknown[0]!r}; choose from {', '.join(LPIPS_NETS)}")
    return parsed


def _check_inputs(names: list[str], synthetic: Path | None, real: Path | None, batch_size: int) -> None:
    check_at_least("--batch-size", batch_size)
    for name in names:
        if name in ("sae", "ebr") and synthetic is None:
            raise OptionError(f"{name} needs --synthetic (a dataset folder with generated masks and their boxes)")
        if name in _NEEDS_BOTH and (synthetic is None or real is None):
            raise OptionError(f"{name} needs both --real and --synthetic")
        if name in ("entropy", "cir") and synthetic is None and real is None:
            raise OptionError(f"{name} needs --synthetic or --real")


def _distribution(names: list[str], datasets: dict[str, tuple[Dataset, list[str]]], progress: bool) -> dict[str, dict]:
    if len(datasets) == 2:
        check_same_classes(datasets["synthetic"][0], datasets["real"][0])
    counts = {role: images_per_class(ds, stems, progress) for role, (ds, stems) in datasets.items()}
    if len(datasets) == 2:
        counts["combined"] = counts["real"] + counts["synthetic"]
    class_names = next(iter(datasets.values()))[0].manifest.class_names
    reports = {role: distribution_report(c, class_names) for role, c in counts.items()}
    return {
        name: {role: report[name] for role, report in reports.items()} for name in ("entropy", "cir") if name in names
    }


def _fid_kid(
    names: list[str],
    syn: tuple[Dataset, list[str]],
    real: tuple[Dataset, list[str]],
    features: list[int],
    weights_dir: Path | None,
    batch_size: int,
    device: str,
    progress: bool,
) -> dict[str, dict]:
    for ds, stems in (syn, real):
        if len(stems) < 2:
            raise DatasetError(f"fid and kid need at least 2 images, this selection has {len(stems)}", ds.root)
    net = load_inception(features, weights_dir, device)
    real_features = inception_features(*real, net, features, batch_size, device, progress)
    syn_features = inception_features(*syn, net, features, batch_size, device, progress)
    return fid_kid_report(real_features, syn_features, names)


def _lpips(
    syn: tuple[Dataset, list[str]],
    real: Dataset,
    nets: list[str],
    weights_dir: Path | None,
    batch_size: int,
    device: str,
    progress: bool,
) -> dict[str, dict]:
    pairs = condition_pairs(syn[0], real, syn[1])
    if not pairs:
        raise DatasetError("lpips: the synthetic selection has no images", syn[0].root)
    models = {net: load_lpips(net, weights_dir, device) for net in nets}
    return lpips_report(lpips_distances(syn[0], real, pairs, models, batch_size, device, progress))


def is_metrics_json(path: Path) -> bool:
    """Whether ``path`` holds a result of ``metrics --json`` (a JSON object keyed by metric names),
    the only kind of existing file ``--json`` replaces."""
    try:
        data = read_json(path)
    except DatasetError:
        return False
    return isinstance(data, dict) and bool(data) and set(data) <= set(METRIC_NAMES)


def compute_metrics(
    names: list[str],
    synthetic: Path | None = None,
    real: Path | None = None,
    split: str | None = None,
    *,
    features: str | Sequence[int] = FEATURE_SIZES,
    nets: str | Sequence[str] = LPIPS_NETS,
    weights_dir: Path | None = None,
    batch_size: int = 32,
    hf_cutoff: float = DEFAULT_CUTOFF,
    device: str | None = None,
    progress: bool = False,
    class_agnostic: bool = False,
) -> dict:
    """Compute the metrics ``names`` and return a JSON-ready dict keyed by metric name (fractions, not percent).

    - ``sae``/``ebr``: ``{"per_class": {class name: fraction or None}, "all": fraction or None, "counts": {...}}``
    - ``fid``: ``{"64": value, ...}``; ``kid``: ``{"64": {"mean", "std", "subsets", "subset_size"}, ...}``
    - ``lpips``: ``{"alex": {"mean", "std", "pairs"}, ...}``
    - ``entropy``/``cir``: ``{"synthetic"|"real"|"combined": {"per_class": {...}, "all": value}}``
      (entropy per_class: share of images; cir per_class: image counts; ``all``: bits / Gini).
    - ``texture``: ``{"hf_cutoff", "image": {...}, "boxes": {...}}``, each region with ``real`` and
      ``synthetic`` raw values, ``ratio`` (synthetic / real) and ``distance`` (grey-level histograms);
      see :mod:`defectsynth.metrics.texture`.

    split: stems of this split of ``real`` (of ``synthetic`` when ``real`` is None).
    features: InceptionV3 feature sizes for fid/kid. nets: LPIPS backbones.
    weights_dir: folder of safetensors weights (see :mod:`defectsynth.metrics.weights`); None uses
    the libraries' caches/downloads. hf_cutoff: radial frequency (cycles/pixel) above which
    texture counts power as high-frequency. device: None picks cuda when available, else cpu.
    class_agnostic: sae/ebr as the BASD paper's equations (any defect pixel, any box) instead of
    class-aware (:mod:`defectsynth.metrics.sae_ebr`); the result records which (``"class_agnostic"``).
    """
    names = parse_names(names)
    features = parse_features(features)
    nets = parse_nets(nets)
    synthetic = Path(synthetic) if synthetic is not None else None
    real = Path(real) if real is not None else None
    weights_dir = Path(weights_dir) if weights_dir is not None else None
    _check_inputs(names, synthetic, real, batch_size)
    hf_cutoff = check_cutoff(hf_cutoff)
    device = pick_device(device)
    syn_ds = Dataset(synthetic) if synthetic is not None else None
    real_ds = Dataset(real) if real is not None else None
    syn = (syn_ds, syn_ds.select(split if real_ds is None else None)) if syn_ds is not None else None
    ref = (real_ds, real_ds.select(split)) if real_ds is not None else None

    result: dict[str, Any] = {}
    if {"sae", "ebr"} & set(names):
        counts = dataset_sae_ebr_counts(*syn, progress=progress, class_agnostic=class_agnostic)  # type: ignore[misc]  (checked by _check_inputs)
        result.update(sae_ebr_report(counts, syn[0].manifest.class_names))  # type: ignore[index]
        for name in ("sae", "ebr"):
            result[name]["class_agnostic"] = class_agnostic
    if {"fid", "kid"} & set(names):
        result.update(_fid_kid(names, syn, ref, features, weights_dir, batch_size, device, progress))
    if "lpips" in names:
        result.update(_lpips(syn, real_ds, nets, weights_dir, batch_size, device, progress))
    if {"entropy", "cir"} & set(names):
        given = {role: pair for role, pair in (("synthetic", syn), ("real", ref)) if pair is not None}
        result.update(_distribution(names, given, progress))
    if "texture" in names:
        result.update(texture_report(*ref, *syn, hf_cutoff, progress))  # type: ignore[misc]  (checked by _check_inputs)
    logger.info("computed %s", ", ".join(names))
    return {name: result[name] for name in names}
