"""Segmentation scores the smp way: confusion counts per image and class, then one reduction.

:func:`get_stats` counts true/false positives/negatives per image and class (like
``segmentation_models_pytorch.metrics.get_stats`` in multiclass mode, with pixels of the ignore
index left out). :func:`reduce_stats` turns those counts into every number defectsynth reports:

- ``per_class``: the score of each class from the counts pooled over all images;
- ``per_class_imagewise``: the score of each class per image, averaged over images;
- ``micro``: one score from the counts pooled over all images and the chosen classes;
- ``macro``: the mean of ``per_class`` over the chosen classes;
- ``macro_imagewise``: the mean of ``per_class_imagewise`` over the chosen classes (the thesis'
  main mIoU, section 7.1.1 of Rabensteiner's thesis: "compute the macro reduction independently
  for each image and then average the obtained image scores").

IoU = TP / (TP + FP + FN) and F1 (Dice) = 2TP / (2TP + FP + FN) (thesis eq. 7.4 and 7.5). The BASD
paper's F1 (Table 4) is ``f1.per_class`` of each defect class and their mean, ``f1.macro`` over the
defect classes. Nothing else in defectsynth derives IoU or F1: reuse these two functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from defectsynth.data.model import IGNORE_INDEX, stray_class_ids

__all__ = ["IGNORE_INDEX", "get_stats", "image_scores", "reduce_stats"]


def get_stats(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int | None = IGNORE_INDEX
) -> tuple[torch.Tensor, ...]:
    """Confusion counts per image and class.

    pred, target: (N, H, W) integer class ids (pred in 0..num_classes-1; target may also hold
    ``ignore_index``, whose pixels count nowhere). Returns tp, fp, fn, tn, each (N, C) int64.
    """
    if pred.shape != target.shape or pred.dim() != 3:
        raise ValueError(f"pred and target must both be (N, H, W), got {tuple(pred.shape)} and {tuple(target.shape)}")
    pred = pred.long().flatten(1)
    target = target.long().flatten(1)
    valid = target != ignore_index if ignore_index is not None else torch.ones_like(target, dtype=torch.bool)
    if stray_class_ids(pred, range(num_classes), ignore=None) or stray_class_ids(
        target, range(num_classes), ignore=ignore_index
    ):
        raise ValueError(f"class ids must lie in 0..{num_classes - 1}")
    n = pred.shape[0]
    # One bincount over (image, target, pred) triples gives every per-image confusion matrix.
    index = (
        torch.arange(n, device=pred.device)[:, None] * num_classes + target.clamp(0, num_classes - 1)
    ) * num_classes + pred
    confusion = torch.bincount(index[valid], minlength=n * num_classes * num_classes).view(n, num_classes, num_classes)
    tp = confusion.diagonal(dim1=1, dim2=2)
    fp = confusion.sum(1) - tp
    fn = confusion.sum(2) - tp
    tn = valid.sum(1, keepdim=True) - tp - fp - fn
    return tp.contiguous(), fp, fn, tn


def _iou(tp: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor) -> torch.Tensor:
    return tp / (tp + fp + fn)


def _f1(tp: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor) -> torch.Tensor:
    return 2 * tp / (2 * tp + fp + fn)


SCORES = {"iou": _iou, "f1": _f1}


def _per_image(score: str, tp: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor, zero_division: float) -> torch.Tensor:
    """(N, C) float64 score of each class in each image; a class absent from target and prediction scores
    ``zero_division``."""
    return torch.nan_to_num(SCORES[score](tp.double(), fp.double(), fn.double()), nan=zero_division)


def image_scores(
    tp: torch.Tensor,
    fp: torch.Tensor,
    fn: torch.Tensor,
    score: str = "iou",
    classes: Sequence[int] | None = None,
    zero_division: float = 1.0,
) -> torch.Tensor:
    """(N,) float64 macro score of each image: the mean over ``classes`` (default all) of its per-class scores.

    The per-image terms of ``macro_imagewise`` (:func:`reduce_stats` returns their mean over the
    images), so a class absent from both target and prediction of an image counts ``zero_division``
    (1.0). An image without a valid pixel has all counts 0 and scores ``zero_division`` too: callers
    that must tell it apart check ``(tp + fn).sum(1) == 0``.
    """
    chosen = list(range(tp.shape[1])) if classes is None else list(classes)
    return _per_image(score, tp, fp, fn, zero_division)[:, chosen].mean(1)


def reduce_stats(
    tp: torch.Tensor,
    fp: torch.Tensor,
    fn: torch.Tensor,
    tn: torch.Tensor,
    classes: Sequence[int] | None = None,
    zero_division: float = 1.0,
) -> dict[str, dict[str, Any]]:
    """IoU and F1 in every reduction, from (N, C) counts of :func:`get_stats`.

    classes: the class ids that ``micro``, ``macro`` and ``macro_imagewise`` average over (default:
    all). zero_division: the score of a class that has neither target nor predicted pixels (in one
    image, or in the whole set for ``per_class``): 1.0 counts a correctly predicted absence as
    perfect (smp's ``zero_division=1``). Returns ``{"iou": {...}, "f1": {...}}``, each with
    ``per_class`` and ``per_class_imagewise`` (lists of C floats) and ``micro``, ``macro``,
    ``macro_imagewise`` (floats).
    """
    del tn  # IoU and F1 do not use true negatives (the thesis' advice for imbalanced classes)
    tp, fp, fn = (t.double() for t in (tp, fp, fn))
    chosen = list(range(tp.shape[1])) if classes is None else list(classes)
    result: dict[str, dict[str, Any]] = {}
    for name, score_fn in SCORES.items():
        per_image = _per_image(name, tp, fp, fn, zero_division)  # (N, C)
        per_class = torch.nan_to_num(score_fn(tp.sum(0), fp.sum(0), fn.sum(0)), nan=zero_division)  # (C,)
        imagewise = per_image.mean(0) if len(per_image) else torch.full_like(per_class, float("nan"))
        micro = score_fn(tp[:, chosen].sum(), fp[:, chosen].sum(), fn[:, chosen].sum())
        result[name] = {
            "per_class": per_class.tolist(),
            "per_class_imagewise": imagewise.tolist(),
            "micro": float(torch.nan_to_num(micro, nan=zero_division)),
            "macro": float(per_class[chosen].mean()),
            "macro_imagewise": float(imagewise[chosen].mean()),
        }
    return result
