"""The ``filter`` stage: keep the good synthetic pairs, by one of three backends.

``by="boxes"`` and ``by="segmenter"`` run :func:`defectsynth.filtering.filter_dataset`; ``by="clip"``
runs :func:`defectsynth.sd_backend.clip_filter.filter_by_clip` (its own output: clip_scores.json
and a ``source.filter = "clip"`` manifest). :func:`defectsynth.filtering.check_by_options` refuses
an option given with a ``by`` it does not belong to; :data:`BATCH_SIZES` holds each backend's batch.
"""

from __future__ import annotations

from pathlib import Path

from defectsynth.deprecation import renamed_keywords
from defectsynth.errors import OptionError

# Images per batch when left out: segmenter training and scoring, CLIP passes.
BATCH_SIZES = {"boxes": 8, "segmenter": 8, "clip": 16}


@renamed_keywords(model="segmenter", clip="clip_model")
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
    batch_size: int | None = None,
    lr: float = 1e-4,
    seed: int = 0,
    device: str | None = None,
    overwrite: bool = False,
    progress: bool = False,
    class_agnostic: bool = False,
    clip_model: str | Path | None = None,
    keep_per_class: int | None = None,
    prompt_template: str | None = None,
):
    """Filter the synthetic dataset folder ``synthetic`` into ``out``.

    by ``boxes`` / ``segmenter``: :func:`defectsynth.filtering.filter_dataset` (returns its
    :class:`~defectsynth.filtering.FilterSummary`); ``split="all"`` (or None) trains the segmenter
    on every stem of ``real``; ``encoder_weights="none"`` (or None) starts from random weights.
    by ``clip``: :func:`defectsynth.sd_backend.clip_filter.filter_by_clip` with the CLIP folder
    ``clip_model``, ``keep_per_class`` or ``keep_fraction`` and ``prompt_template`` (returns ``out`` as
    a Path). batch_size left out: :data:`BATCH_SIZES`.
    """
    from defectsynth.filtering import check_by_options

    given = {"--clip-labels": clip_labels, "--max-sae": max_sae is not None, "--drop-empty-boxes": drop_empty_boxes,
             "--real": real is not None, "--segmenter": segmenter is not None, "--top-k": top_k is not None,
             "--keep-fraction": keep_fraction is not None, "--clip-model": clip_model is not None,
             "--keep-per-class": keep_per_class is not None, "--prompt-template": prompt_template is not None,
             "--class-agnostic": class_agnostic}  # fmt: skip
    if by not in BATCH_SIZES:
        raise OptionError(f"--by: choose one of {', '.join(BATCH_SIZES)}, got {by!r}")
    check_by_options(by, given)
    batch_size = BATCH_SIZES.get(by, 8) if batch_size is None else batch_size
    if by == "clip":
        return _by_clip(
            synthetic,
            out,
            clip_model,
            keep_per_class,
            keep_fraction,
            prompt_template,
            device,
            batch_size,
            overwrite,
            progress,
        )
    from defectsynth import filtering

    return filtering.filter_dataset(
        synthetic, out, by, clip_labels=clip_labels, max_sae=max_sae, drop_empty_boxes=drop_empty_boxes, real=real,
        segmenter=segmenter, split=None if split == "all" else split, score=score, top_k=top_k,
        keep_fraction=keep_fraction, size=size, arch=arch, encoder=encoder,
        encoder_weights=None if str(encoder_weights).lower() == "none" else encoder_weights, epochs=epochs,
        batch_size=batch_size, lr=lr, seed=seed, device=device, overwrite=overwrite, progress=progress,
        class_agnostic=class_agnostic,
    )  # fmt: skip


def _by_clip(
    synthetic, out, clip_model, keep_per_class, keep_fraction, prompt_template, device, batch_size, overwrite, progress
) -> Path:
    """``by="clip"``: :func:`filter_by_clip` with the stage's options."""
    from defectsynth.sd_backend import clip_filter

    if clip_model is None:
        raise OptionError("--by clip needs --clip-model DIR (a local CLIP model folder)")
    return clip_filter.filter_by_clip(
        synthetic, out, clip_model, keep_per_class=keep_per_class, keep_fraction=keep_fraction,
        prompt_template=clip_filter.CLIP_TEMPLATE if prompt_template is None else prompt_template,
        device=device or "auto", batch_size=batch_size, overwrite=overwrite, progress=progress,
    )  # fmt: skip
