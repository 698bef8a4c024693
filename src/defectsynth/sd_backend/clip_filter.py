"""CLIP post-filter (VOC paper, Section 4.3.1, after Fang et al. 2024's category-calibrated CLIP rank).

Each synthetic image is scored by the cosine similarity between its CLIP image embedding and the
CLIP text embedding of its class prompt (``"a photo of <classes in its mask>"``). Scores of
different classes are not comparable, so the ranking is per class: for every class, the images
containing it are sorted by score and the best ``keep_per_class`` (or the best ``keep_fraction``,
rounded up) are kept; an image is kept when any of its classes keeps it. Images without a
labelled class form one more group, scored against the background class name.

Output: a dataset folder with the kept samples (masks, boxes and the splits restricted to them),
``dataset.json`` source ``{"filter": "clip", ..., "from": <input>, "parent": <input source>}`` and
``clip_scores.json``: ``{"prompt_template": ..., "samples": {stem: {"score": s, "prompt": p, "kept": bool}}}``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from defectsynth.checks import check_at_least
from defectsynth.data import Dataset, Manifest
from defectsynth.data.files import write_json
from defectsynth.data.model import IGNORE_INDEX
from defectsynth.deprecation import renamed_keywords
from defectsynth.devices import pick_device
from defectsynth.errors import MissingDependencyError, OptionError, first_line
from defectsynth.locks import writes_output
from defectsynth.metrics.distribution import sample_classes
from defectsynth.progress import track
from defectsynth.sd_backend.pipeline import check_folder, quiet_loading, require_transformers
from defectsynth.sd_backend.prompts import build_prompt, check_template, class_prompt

CLIP_TEMPLATE = "a photo of {classes}"


class ClipScorer:
    """A local CLIP model (``CLIPModel`` + its processor, e.g. ``openai/clip-vit-large-patch14``).

    ``__call__(images: list of (H, W, 3) uint8, prompts: list[str]) -> (N,) float cosine similarities``.
    """

    def __init__(self, clip: str | Path, device: str = "auto"):
        require_transformers()
        from transformers import AutoProcessor, CLIPModel

        folder = check_folder(clip, "--clip-model", "config.json")
        self.device = pick_device(device)
        try:
            with quiet_loading():
                self.processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
                self.model = (
                    CLIPModel.from_pretrained(folder, local_files_only=True, use_safetensors=True)
                    .to(self.device)
                    .eval()
                )
        except (OSError, ValueError, KeyError) as err:
            raise MissingDependencyError(f"cannot load the CLIP model ({first_line(err)})", folder) from None

    def __call__(self, images: list[np.ndarray], prompts: list[str]) -> np.ndarray:
        import torch
        from PIL import Image

        inputs = self.processor(
            text=list(prompts),
            images=[Image.fromarray(im) for im in images],
            return_tensors="pt",
            padding=True,
            truncation=True,
        )
        with torch.no_grad():
            output = self.model(**inputs.to(self.device))
        image = torch.nn.functional.normalize(output.image_embeds.float(), dim=-1)
        text = torch.nn.functional.normalize(output.text_embeds.float(), dim=-1)
        return (image * text).sum(-1).cpu().numpy()


def clip_scores(
    images: list[np.ndarray],
    prompts: list[str],
    clip: str | Path | ClipScorer,
    device: str = "auto",
    batch_size: int = 16,
    progress: bool = False,
) -> np.ndarray:
    """(N,) cosine similarity of each image with its own prompt, in batches of ``batch_size``."""
    scorer = clip if isinstance(clip, ClipScorer) else ClipScorer(clip, device)
    starts = range(0, len(images), batch_size)
    parts = [
        scorer(images[i : i + batch_size], prompts[i : i + batch_size])
        for i in track(starts, len(starts), "CLIP scores", progress)
    ]
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def select_per_class(
    groups: dict[str, list[int]], scores: dict[str, float], keep_per_class: int | None, keep_fraction: float | None
) -> set[str]:
    """Stems kept: per group (class id -> stems holding it), the best by score (ties: by stem)."""
    kept: set[str] = set()
    for stems in groups.values():
        ranked = sorted(stems, key=lambda s: (-scores[s], s))
        k = keep_per_class if keep_per_class is not None else math.ceil(keep_fraction * len(ranked))  # type: ignore[operator]
        kept.update(ranked[:k])
    return kept


@renamed_keywords(clip="clip_model")
@writes_output("filter", "out")
def filter_by_clip(
    synthetic: str | Path,
    out: str | Path,
    clip_model: str | Path,
    keep_per_class: int | None = None,
    keep_fraction: float | None = None,
    *,
    prompt_template: str = CLIP_TEMPLATE,
    device: str = "auto",
    batch_size: int = 16,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Keep the synthetic images CLIP finds closest to their class prompt, per class; returns ``out``.

    clip_model: a local CLIP model folder (the keyword was ``clip`` before; that still works for one
    release, with a DeprecationWarning). Written like every filter's output (:func:`defectsynth.filtering.write_kept`:
    kept samples, their cached conditions, the splits restricted to them).
    """
    from defectsynth.filtering import check_keep, write_kept  # torch and smp: loaded when filtering, not on import

    check_keep("clip", "--keep-per-class N", keep_per_class, keep_fraction)
    check_at_least("--batch-size", batch_size)
    check_template(prompt_template)
    if "{caption}" in prompt_template:
        raise OptionError("--prompt-template: the CLIP filter has no captions, use {classes} only")
    dataset = Dataset(synthetic)
    names = dataset.manifest.class_names
    scorer = ClipScorer(clip_model, device)

    scores: dict[str, float] = {}
    prompts: dict[str, str] = {}
    groups: dict[int, list[str]] = {}
    stems = dataset.stems
    for start in track(range(0, len(stems), batch_size), -(-len(stems) // batch_size), "CLIP scores", progress):
        samples = [dataset.read(s) for s in stems[start : start + batch_size]]
        for sample in samples:
            classes = list(sample_classes(sample.mask, () if sample.mask is not None else sample.boxes, IGNORE_INDEX))
            prompts[sample.stem] = build_prompt(class_prompt(classes or [0], names), None, prompt_template)
            for cls in classes or [0]:
                groups.setdefault(cls, []).append(sample.stem)
        batch_scores = scorer([s.image for s in samples], [prompts[s.stem] for s in samples])
        scores.update({s.stem: float(v) for s, v in zip(samples, batch_scores)})
    kept = select_per_class({str(c): v for c, v in groups.items()}, scores, keep_per_class, keep_fraction)

    source = {
        "filter": "clip", "clip": str(clip_model), "keep_per_class": keep_per_class, "keep_fraction": keep_fraction,
        "prompt_template": prompt_template, "from": str(synthetic), "parent": dataset.manifest.source,
    }  # fmt: skip
    manifest = Manifest(
        name=dataset.manifest.name,
        classes=dataset.manifest.classes,
        source=source,
        synthetic=dataset.manifest.synthetic,
    )
    samples_json = {s: {"score": scores[s], "prompt": prompts[s], "kept": s in kept} for s in stems}

    def scores_file(tmp):
        return write_json(
            tmp / "clip_scores.json", {"prompt_template": prompt_template, "samples": samples_json}, durable=False
        )

    write_kept(dataset, out, manifest, (dataset.read(s) for s in stems if s in kept), overwrite, scores_file)
    return Path(out)
