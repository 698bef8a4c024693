"""Filtering a synthetic dataset folder into a new one: by its condition boxes, or by a segmenter.

- ``by="boxes"`` (BASD paper, section 4.3): ``clip_labels`` sets every mask pixel of class c that
  lies outside all boxes of class c to background ("we discard synthetic pixel labels generated
  outside the bounding boxes conditioning"); ``max_sae`` rejects a sample whose share of defect
  pixels outside their class's boxes (its SAE, BASD eq. 5, measured before clipping) exceeds it;
  ``drop_empty_boxes`` rejects a sample with a box holding no pixel of its class (EBR, eq. 6).
- ``by="segmenter"`` (Rabensteiner's thesis, section 6.1.1, step 5): a U-Net trained on the real
  data the way ``evaluate`` trains a cell (:func:`defectsynth.evaluation.training.train_model`:
  best epoch on a held-out 20 %), or a saved network (``evaluate --save-models``, or the
  ``segmenter/`` of an earlier filter), predicts every synthetic image; the pair is scored by the
  IoU (per image, the mean over all classes, a class absent from both counting 1: ``evaluate``'s
  convention, :func:`defectsynth.metrics.segmentation.image_scores`; higher is better) or the
  cross-entropy (lower is better) between that prediction and the generated mask; the top K
  pairs are kept. Inputs are normalised as ``evaluate`` does (evaluation.data.normalise).

Output (an ordinary dataset folder, written atomically; the input is never modified)::

    <out>/
      dataset.json      the input's manifest; source["filters"] gets one record appended:
                        {"by", "input", "options", "kept", "removed": {stem: reason}, ...}
      images/ masks/ boxes/ conditions/   the kept samples (masks clipped with clip_labels)
      scores.json       by="segmenter": {"score", "higher_is_better", "keep", "samples":
                        {stem: {"score": float | null, "rank": int, "kept": bool}}}
      segmenter/        by="segmenter" when trained here: the network (config.json +
                        model.safetensors, formats.segmenter.save_model), reusable with
                        ``segmenter=<out>/segmenter`` (``filter --segmenter``)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from defectsynth.checks import check_at_least
from defectsynth.data.files import write_json
from defectsynth.data.model import IGNORE_INDEX, Box, Manifest, Sample, boxes_to_array, stray_class_ids
from defectsynth.data.resize import parse_size
from defectsynth.deprecation import renamed_keywords
from defectsynth.devices import pick_device
from defectsynth.errors import DatasetError, OptionError, first_line
from defectsynth.evaluation.data import normalise, read_pair
from defectsynth.evaluation.grid import VAL_FRACTION, holdout
from defectsynth.evaluation.training import TrainConfig, train_model
from defectsynth.formats.conditions import copy_conditions
from defectsynth.formats.dataset import Dataset, DatasetWriter, check_output_dir, check_same_classes
from defectsynth.formats.segmenter import load_model, save_model
from defectsynth.locks import writes_output
from defectsynth.metrics.distribution import sample_classes
from defectsynth.metrics.sae_ebr import inside_own_boxes, sae_ebr_counts
from defectsynth.metrics.segmentation import get_stats, image_scores
from defectsynth.progress import progress_bar, track

logger = logging.getLogger(__name__)

FILTER_BY = ("boxes", "segmenter")  # filter_dataset's; `filter --by clip` runs sd_backend.clip_filter.filter_by_clip
# The options (CLI names) that only one --by takes; the CLI checks them with check_by_options.
BY_OPTIONS = {
    "boxes": ("--clip-labels", "--max-sae", "--drop-empty-boxes", "--class-agnostic"),
    "segmenter": ("--real", "--segmenter", "--top-k", "--keep-fraction"),
    "clip": ("--clip-model", "--keep-per-class", "--keep-fraction", "--prompt-template"),
}
SCORES = ("iou", "ce")
FILTER_NEEDS_MASKS = "the segmenter filter"  # names this filter in evaluation.data.read_pair's error


@dataclass
class FilterSummary:
    """What :func:`filter_dataset` wrote. Per-class arrays are indexed by class id."""

    out: Path
    by: str
    kept: list[str]
    removed: dict[str, str]
    input_images: np.ndarray  # images containing each class in the input
    kept_images: np.ndarray  # ... in the output (after clipping)
    removed_images: np.ndarray  # ... among the removed samples
    clipped_pixels: np.ndarray  # pixels set to background by clip_labels
    class_names: dict[int, str]
    scores: dict[str, float | None] = field(default_factory=dict)


# -- by boxes ---------------------------------------------------------------------------------------
def clip_to_boxes(mask: np.ndarray, boxes: list[Box], class_agnostic: bool = False) -> np.ndarray:
    """``mask`` with every defect pixel outside all boxes of its own class (``class_agnostic``:
    outside every box, the paper's wording) set to 0 (a new array).

    mask: (H, W) uint8 class ids (0 background, 255 ignore, which stays). boxes: the conditions.
    """
    aligned, _ = inside_own_boxes(mask, *boxes_to_array(boxes), class_agnostic)
    outside = ~aligned & (mask != 0) & (mask != IGNORE_INDEX)
    clipped = mask.copy()
    clipped[outside] = 0
    return clipped


def box_problems(
    sample: Sample, num_classes: int, max_sae: float | None, drop_empty_boxes: bool, class_agnostic: bool = False
) -> list[str]:
    """Why ``sample`` fails the box checks ([] = it passes); measured on its unclipped mask."""
    counts = sae_ebr_counts(sample.mask, *boxes_to_array(sample.boxes), num_classes, class_agnostic)
    problems = []
    empty, boxes = int(counts.empty.sum()), int(counts.boxes.sum())
    if drop_empty_boxes and empty:
        problems.append(f"{empty} of {boxes} boxes hold no pixel of their class")
    _, sae = counts.sae()
    if max_sae is not None and sae is not None and sae > max_sae:
        outside, pixels = int(counts.misaligned.sum()), int(counts.generated.sum())
        problems.append(
            f"SAE {sae:.3f} > max_sae {max_sae:g} ({outside} of {pixels} defect pixels outside their boxes)"
        )
    return problems


# -- by segmenter: scoring ------------------------------------------------------------------------
def to_model_input(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32, normalised as ``evaluate`` does
    (:func:`evaluation.data.normalise`)."""
    return normalise(torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2))


def per_image_iou(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(N,) float64 IoU of each image, the ``evaluate`` convention (:func:`metrics.segmentation.image_scores`).

    pred, target: (N, H, W) class ids (255 in target: ignored). The mean over the classes
    0..num_classes-1 (background included) of each class's IoU in that image; a class absent from
    both prediction and target counts 1 (smp's ``zero_division=1``). NaN for an image without a
    valid pixel (it cannot be scored).
    """
    tp, fp, fn, _ = get_stats(pred, target, num_classes)
    iou = image_scores(tp, fp, fn, "iou")
    return torch.where((tp + fn).sum(1) > 0, iou, torch.full_like(iou, float("nan")))


def per_image_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(N,) float64 mean pixel cross-entropy of (N, C, H, W) logits against (N, H, W) ids; NaN without valid pixels."""
    loss = F.cross_entropy(logits.float(), target.long(), ignore_index=IGNORE_INDEX, reduction="none")
    valid = (target != IGNORE_INDEX).flatten(1)
    return (loss.flatten(1).sum(1) / valid.sum(1)).double()


@torch.no_grad()
def score_pairs(
    model: nn.Module,
    images: np.ndarray,
    masks: np.ndarray,
    score: str = "iou",
    batch_size: int = 8,
    device: str | torch.device = "cpu",
) -> list[float | None]:
    """Score each (image, generated mask) pair by the segmenter's agreement with the mask.

    model: any nn.Module mapping (B, 3, H, W) float (:func:`to_model_input`) to (B, C, H, W) logits.
    images: (N, H, W, 3) uint8. masks: (N, H, W) uint8 class ids < C (255 = ignore).
    score: "iou" (per-image mean IoU of the argmax, higher is better) or "ce" (mean cross-entropy,
    lower is better). Returns N floats, None for a mask without a valid pixel.
    """
    if score not in SCORES:
        raise OptionError(f"--score: choose one of {', '.join(SCORES)}, got {score!r}")
    model.eval()
    out: list[float | None] = []
    for start in range(0, len(images), batch_size):
        x = to_model_input(images[start : start + batch_size]).to(device)
        target = torch.from_numpy(masks[start : start + batch_size].astype(np.int64)).to(device)
        with _size_errors(tuple(x.shape[-2:])):
            logits = model(x)
        classes = logits.shape[1]
        stray = stray_class_ids(masks[start : start + batch_size], range(classes))
        if stray:
            raise DatasetError(f"the segmenter predicts {classes} classes, but the masks hold class {stray[-1]}")
        values = per_image_iou(logits.argmax(1), target, classes) if score == "iou" else per_image_ce(logits, target)
        out.extend(None if math.isnan(v) else float(v) for v in values.cpu().tolist())
    return out


def rank_scores(scores: dict[str, float | None], score: str) -> list[str]:
    """Stems best first (highest IoU or lowest CE; ties keep the given order; unscored last)."""
    sign = -1.0 if score == "iou" else 1.0
    order = {stem: k for k, stem in enumerate(scores)}
    scored = sorted((s for s in scores if scores[s] is not None), key=lambda s: (sign * scores[s], order[s]))  # type: ignore[operator]
    return scored + [s for s in scores if scores[s] is None]


def check_keep(by: str, count_option: str, count: int | None, keep_fraction: float | None) -> None:
    """Exactly one of a count (``count_option`` with its metavar, at least 1) or ``keep_fraction`` in (0, 1].

    Shared by ``--by segmenter`` (``"--top-k K"``) and ``--by clip`` (``"--keep-per-class N"``).
    """
    if (count is None) == (keep_fraction is None):
        raise OptionError(f"--by {by} needs exactly one of {count_option} or --keep-fraction F")
    if count is not None:
        check_at_least(count_option.split()[0], count)
    if keep_fraction is not None and not 0 < keep_fraction <= 1:
        raise OptionError(f"--keep-fraction must lie in (0, 1], got {keep_fraction}")


def keep_count(total: int, top_k: int | None, keep_fraction: float | None) -> int:
    """K from ``top_k`` or ``keep_fraction`` (floor of fraction x total, at least 1); exactly one must be given."""
    check_keep("segmenter", "--top-k K", top_k, keep_fraction)
    if top_k is not None:
        if top_k > total:
            logger.warning("--top-k %d is more than the %d synthetic samples: keeping all", top_k, total)
        return min(top_k, total)
    return max(1, math.floor(keep_fraction * total + 1e-9))  # type: ignore[operator]


# -- by segmenter: the network ----------------------------------------------------------------------
def read_pairs(
    dataset: Dataset, stems: list[str], size: tuple[int, int], progress: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, H, W, 3) uint8 and masks (N, H, W) uint8 of ``stems``, resized to ``size`` = (H, W)."""
    pairs = [
        read_pair(dataset, s, size, FILTER_NEEDS_MASKS)
        for s in track(stems, total=len(stems), description=f"read {dataset.root.name}", enabled=progress)
    ]
    return np.stack([image for image, _ in pairs]), np.stack([mask for _, mask in pairs])


def score_dataset(
    model: nn.Module,
    dataset: Dataset,
    size: tuple[int, int],
    score: str,
    batch_size: int,
    device,
    progress: bool = False,
) -> dict[str, float | None]:
    """:func:`score_pairs` over every stem of ``dataset`` at ``size`` = (H, W), read one batch at a time."""
    batches = [dataset.stems[i : i + batch_size] for i in range(0, len(dataset.stems), batch_size)]
    scores: dict[str, float | None] = {}
    for stems in track(batches, total=len(batches), description=f"score {dataset.root.name}", enabled=progress):
        images, masks = read_pairs(dataset, stems, size)
        scores.update(zip(stems, score_pairs(model, images, masks, score, batch_size, device)))
    return scores


def train_segmenter(
    real: str | Path,
    split: str | None = "train",
    epochs: int = 50,
    *,
    size: tuple[int, int],
    arch: str = "unet",
    encoder: str = "resnet34",
    encoder_weights: str | None = "imagenet",
    batch_size: int = 8,
    lr: float = 1e-4,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> tuple[nn.Module, dict[str, Any]]:
    """Train the thesis' filter network on the real pairs of ``split`` the way ``evaluate`` trains a cell.

    :func:`evaluation.training.train_model`: an smp ``arch`` (default U-Net), Adam at ``lr``
    divided by 10 halfway, Dice loss; VAL_FRACTION (20 %) of ``split`` is held out (seeded) and
    the epoch with the best validation mIoU is kept. Pairs are resized to ``size`` = (H, W).
    Returns the network (eval mode) and ``{"best_epoch", "best_val_miou", "history"}``.
    """
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise OptionError(f"--epochs and --batch-size must be >= 1 and --lr > 0, got {epochs}, {batch_size}, {lr}")
    ds = Dataset(real)
    train, val = holdout(ds.select(split), VAL_FRACTION, seed)
    train_pairs, val_pairs = ([read_pair(ds, s, size, FILTER_NEEDS_MASKS) for s in stems] for stems in (train, val))
    config = TrainConfig(encoder, encoder_weights, epochs, batch_size, lr)
    with progress_bar(progress, epochs, "train segmenter") as (update, advance), _size_errors(size):

        def on_epoch(epoch: int, entry: dict[str, float]) -> None:
            update(status=f"val mIoU {entry['val_miou']:.3f}")
            advance()

        return train_model(
            arch,
            ds.manifest.num_classes,
            train_pairs,
            val_pairs,
            config,
            seed,
            device,
            on_epoch=on_epoch,
            option="--arch",
        )


@contextmanager
def _size_errors(size: tuple[int, int]) -> Iterator[None]:
    """An image size = (H, W) the network cannot take (stride-bound architectures) becomes one ``--size`` line."""
    try:
        yield
    except RuntimeError as err:
        if "input shape" in str(err) or "divisible" in str(err):
            raise OptionError(f"--size: {size[1]}x{size[0]} does not suit the segmenter ({first_line(err)})") from None
        raise


# -- the filter ---------------------------------------------------------------------------------------
def check_by_options(by: str, given: dict[str, bool]) -> None:
    """Refuse an option of :data:`BY_OPTIONS` given (``given[name]`` true) with a ``by`` it does not belong to.

    given: CLI option name -> whether the user gave it. Options with defaults that only one
    ``by`` reads (``--epochs``, ``--score`` ...) are not checked: the others leave them unused.
    """
    names = dict.fromkeys(name for options in BY_OPTIONS.values() for name in options)
    foreign = [name for name in names if given.get(name) and name not in BY_OPTIONS[by]]
    if foreign:
        owner = next(other for other, options in BY_OPTIONS.items() if foreign[0] in options)
        raise OptionError(
            f"{', '.join(foreign)} cannot be used with --by {by} (options that belong to --by {owner}; run "
            "filter twice to combine)"
        )


def _check_options(
    by: str,
    clip_labels: bool,
    max_sae: float | None,
    drop_empty_boxes: bool,
    real,
    segmenter,
    top_k,
    keep_fraction,
    score: str,
    batch_size: int,
) -> None:
    if by not in FILTER_BY:
        raise OptionError(f"--by: choose one of {', '.join(FILTER_BY)}, got {by!r}")
    given = {"--clip-labels": clip_labels, "--max-sae": max_sae is not None, "--drop-empty-boxes": drop_empty_boxes,
             "--real": real is not None, "--segmenter": segmenter is not None, "--top-k": top_k is not None,
             "--keep-fraction": keep_fraction is not None}  # fmt: skip
    check_by_options(by, given)
    if by == "boxes":
        if not (clip_labels or max_sae is not None or drop_empty_boxes):
            raise OptionError("--by boxes needs --clip-labels, --max-sae X or --drop-empty-boxes")
        if max_sae is not None and not 0 <= max_sae <= 1:
            raise OptionError(f"--max-sae must lie in [0, 1], got {max_sae}")
        return
    if (real is None) == (segmenter is None):
        raise OptionError(
            "--by segmenter needs exactly one of --real DIR (train a U-Net on it) or --segmenter DIR (a saved "
            "smp network)"
        )
    if score not in SCORES:
        raise OptionError(f"--score: choose one of {', '.join(SCORES)}, got {score!r}")
    check_at_least("--batch-size", batch_size)


def _filter_record(
    syn: Dataset, by: str, options: dict[str, Any], kept: list[str], removed: dict[str, str], extra: dict[str, Any]
) -> dict[str, Any]:
    return {
        "by": by,
        "input": str(syn.root.resolve()),
        "options": options,
        "kept": len(kept),
        "removed": removed,
        **extra,
    }


def _output_manifest(syn: Dataset, kept: list[str], record: dict[str, Any]) -> Manifest:
    source = dict(syn.manifest.source)
    if isinstance(source.get("condition_of"), dict):
        source["condition_of"] = {s: c for s, c in source["condition_of"].items() if s in set(kept)}
    source["filters"] = [*source.get("filters", []), record]
    return Manifest(
        name=f"{syn.manifest.name}-filtered",
        classes=syn.manifest.classes,
        source=source,
        synthetic=syn.manifest.synthetic,
    )


@renamed_keywords(model="segmenter")
@writes_output("filter", "out")
def filter_dataset(
    synthetic: str | Path,
    out: str | Path,
    by: str = "boxes",
    *,
    clip_labels: bool = False,
    max_sae: float | None = None,
    drop_empty_boxes: bool = False,
    real: str | Path | None = None,
    segmenter: str | Path | None = None,
    split: str | None = "train",
    score: str = "iou",
    top_k: int | None = None,
    keep_fraction: float | None = None,
    size: str | tuple[int, int] | None = None,
    arch: str = "unet",
    encoder: str = "resnet34",
    encoder_weights: str | None = "imagenet",
    epochs: int = 50,
    batch_size: int = 8,
    lr: float = 1e-4,
    seed: int = 0,
    device: str | None = None,
    overwrite: bool = False,
    progress: bool = False,
    class_agnostic: bool = False,
) -> FilterSummary:
    """Filter the synthetic dataset folder ``synthetic`` into ``out`` (see the module docstring).

    by="boxes": clip_labels, max_sae (0..1), drop_empty_boxes; class_agnostic: a pixel is kept /
    aligned when it lies in any box and a box is empty without any defect pixel (the BASD paper's
    wording and eqs. 5-6) instead of the default class-aware reading (its own class's boxes). by="segmenter": real
    (train a U-Net on its ``split``; arch, encoder, encoder_weights, epochs, batch_size, lr, seed) or segmenter (a
    network folder of formats.segmenter.save_model, e.g. ``<evaluate out>/models/<cell>``; the
    keyword was ``model`` before, which still works for one release with a DeprecationWarning);
    score "iou" or "ce"; top_k or keep_fraction; size (H, W) or "N" / "WxH" the pairs are scored at (default: the first
    synthetic image's size); device (None: cuda when available).
    """
    _check_options(by, clip_labels, max_sae, drop_empty_boxes, real, segmenter, top_k, keep_fraction, score, batch_size)
    check_by_options(by, {"--class-agnostic": class_agnostic})
    syn = Dataset(synthetic)
    out = Path(out)
    check_output_dir(out, overwrite)
    if not syn.has_masks:
        raise DatasetError("filter needs generated masks, and this dataset has no masks/ folder", syn.root)
    if not syn.stems:
        raise DatasetError("the dataset has no images: nothing to filter", syn.root)
    if by == "boxes":
        options = {
            "clip_labels": clip_labels,
            "max_sae": max_sae,
            "drop_empty_boxes": drop_empty_boxes,
            "class_agnostic": class_agnostic,
        }
        return _filter_by_boxes(syn, out, options, overwrite, progress)
    k = keep_count(len(syn.stems), top_k, keep_fraction)
    dev = pick_device(device)
    if real is not None:
        check_same_classes(Dataset(real), syn)
    size_hw = parse_size(size) or syn.read(syn.stems[0]).size
    if segmenter is not None:
        net, trained, about_net = (
            load_model(segmenter, "--segmenter").to(dev),
            None,
            {"model": str(Path(segmenter).resolve())},
        )
    else:
        training = {"split": split, "arch": arch, "encoder": encoder, "encoder_weights": encoder_weights,
                    "epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed}  # fmt: skip
        net, selection = train_segmenter(real, size=size_hw, device=dev, progress=progress, **training)
        trained = net
        about_net = {"real": str(Path(real).resolve()), **training, "val_fraction": VAL_FRACTION,
                     "best_epoch": selection["best_epoch"], "best_val_miou": selection["best_val_miou"]}  # fmt: skip
    scores = score_dataset(net, syn, size_hw, score, batch_size, dev, progress)
    options = {"score": score, "top_k": top_k, "keep_fraction": keep_fraction, "size": list(size_hw), **about_net}
    return _filter_by_segmenter(syn, out, options, scores, k, trained, overwrite, progress)


def write_kept(
    syn: Dataset, out: str | Path, manifest: Manifest, samples, overwrite: bool, extra_files
) -> tuple[np.ndarray, list[str]]:
    """Write a filter's output folder ``out`` atomically: the kept ``samples`` (an iterable of Sample
    from ``syn``), their cached conditions, ``syn``'s splits restricted to them, and
    ``extra_files(tmp)`` (e.g. a scores file). Returns (images per class written, kept stems).
    Every filter (boxes, segmenter, clip) writes through here."""
    with DatasetWriter(out, manifest, overwrite=overwrite) as writer:
        kept = []
        for sample in samples:
            writer.add(sample)
            kept.append(sample.stem)
        copy_conditions(syn.root, kept, writer.tmp)
        splits = {name: [s for s in syn.split(name) if s in writer.stems] for name in syn.split_names}
        extra_files(writer.tmp)
        writer.commit({k: v for k, v in splits.items() if v} or None)
        return writer.stats.images_per_class.copy(), kept


def _filter_by_boxes(
    syn: Dataset, out: Path, options: dict[str, Any], overwrite: bool, progress: bool
) -> FilterSummary:
    num_classes = syn.manifest.num_classes
    removed: dict[str, str] = {}
    clipped_by_stem: dict[str, int] = {}
    input_images = np.zeros(num_classes, np.int64)
    removed_images = np.zeros(num_classes, np.int64)
    clipped = np.zeros(num_classes, np.int64)
    # 1. decide every sample first, so that the provenance can be written with the samples
    for stem in track(syn.stems, total=len(syn.stems), description="check boxes", enabled=progress):
        sample = syn.read(stem)
        present = list(sample_classes(sample.mask, sample.boxes, num_classes))
        input_images[present] += 1
        problems = box_problems(
            sample, num_classes, options["max_sae"], options["drop_empty_boxes"], options["class_agnostic"]
        )
        if problems:
            removed[stem] = "; ".join(problems)
            removed_images[present] += 1
        elif options["clip_labels"]:
            lost = sample.mask[clip_to_boxes(sample.mask, sample.boxes, options["class_agnostic"]) != sample.mask]
            if lost.size:
                clipped_by_stem[stem] = int(lost.size)
                clipped += np.bincount(lost, minlength=256)[:num_classes]
    kept_stems = [s for s in syn.stems if s not in removed]
    if not kept_stems:
        raise DatasetError(
            f"every one of the {len(syn.stems)} samples was rejected: nothing to write (relax --max-sae or "
            "--drop-empty-boxes)",
            syn.root,
        )
    record = _filter_record(syn, "boxes", options, kept_stems, removed, {"clipped_pixels": clipped_by_stem})
    manifest = _output_manifest(syn, kept_stems, record)

    # 2. write the kept samples, clipped
    def samples():
        for stem in track(kept_stems, total=len(kept_stems), description="write", enabled=progress):
            sample = syn.read(stem)
            if options["clip_labels"]:
                sample.mask = clip_to_boxes(sample.mask, sample.boxes, options["class_agnostic"])
            yield sample

    kept_images, kept = write_kept(syn, out, manifest, samples(), overwrite, lambda tmp: None)
    return FilterSummary(
        out, "boxes", kept, removed, input_images, kept_images, removed_images, clipped, syn.manifest.class_names
    )


def _filter_by_segmenter(
    syn: Dataset,
    out: Path,
    options: dict[str, Any],
    scores: dict[str, float | None],
    k: int,
    trained: nn.Module | None,
    overwrite: bool,
    progress: bool,
) -> FilterSummary:
    num_classes = syn.manifest.num_classes
    ranking = rank_scores(scores, options["score"])
    keep = set(ranking[:k])
    rank = {stem: r + 1 for r, stem in enumerate(ranking)}
    label = lambda v: "no valid pixel" if v is None else f"{v:.4f}"  # noqa: E731
    removed = {
        s: f"rank {rank[s]} of {len(ranking)} by {options['score']} {label(scores[s])} (keeping {k})"
        for s in ranking[k:]
    }
    kept_stems = [s for s in syn.stems if s in keep]
    scores_json = {
        "score": options["score"], "higher_is_better": options["score"] == "iou", "keep": k,
        "samples": {s: {"score": scores[s], "rank": rank[s], "kept": s in keep} for s in syn.stems},
    }  # fmt: skip
    record = _filter_record(syn, "segmenter", options, kept_stems, removed, {"scores": "scores.json"})
    manifest = _output_manifest(syn, kept_stems, record)
    input_images = np.zeros(num_classes, np.int64)
    removed_images = np.zeros(num_classes, np.int64)

    def samples():
        for stem in track(syn.stems, total=len(syn.stems), description="write", enabled=progress):
            sample = syn.read(stem)
            present = list(sample_classes(sample.mask, sample.boxes, num_classes))
            input_images[present] += 1
            if stem in keep:
                yield sample
            else:
                removed_images[present] += 1

    def extra_files(tmp: Path) -> None:
        write_json(tmp / "scores.json", scores_json, durable=False)
        if trained is not None:
            save_model(trained, tmp / "segmenter")

    kept_images, kept = write_kept(syn, out, manifest, samples(), overwrite, extra_files)
    no_clipping = np.zeros(num_classes, np.int64)
    return FilterSummary(
        out,
        "segmenter",
        kept,
        removed,
        input_images,
        kept_images,
        removed_images,
        no_clipping,
        syn.manifest.class_names,
        scores,
    )
