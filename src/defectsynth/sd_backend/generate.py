"""``sample_sd``: redraw real images with SDXL + T2I-Adapter / ControlNet, keeping their real masks.

The VOC paper's pipeline (Che et al., Figure 1): for each real image, (1) build the text prompt by
Class-Prompt Appending, (2) blend the image's visual prior with the edges of its mask (equation 4),
(3) let the controllable diffusion model draw a new image under that prior; the real mask and
boxes become the labels of the synthetic image. Which images are redrawn, and how often, comes from
a ``balance --plan-out`` plan (Algorithm 1) or is every condition image ``num_per_condition`` times.

Output: an ordinary dataset folder (see :mod:`defectsynth.formats.dataset`) with ``"synthetic": true``::

    <out>/
      dataset.json        source: backend, base, adapter | controlnet, steps, guidance, seed, blend,
                          prior, conditions {dataset, split}, condition_of {synthetic stem: condition stem},
                          prompts {synthetic stem: prompt}
      images/<cond>_sd<k>.png   the k-th redraw of condition image <cond>, at the condition's size
      masks/<cond>_sd<k>.png    the real mask of <cond>
      boxes/<cond>_sd<k>.json   the real boxes of <cond>
      previews/<cond>.png       image | image prior | mask prior | blended prior (first `preview` conditions)

A plan file (``balance --plan-out``) is JSON:
``{"format": 1, "dataset": "<path>", "n_balance": N, "plan": [{"stem": "<condition stem>", "repeats": k}, ...]}``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from defectsynth.data import Dataset, DatasetWriter, Manifest, Sample
from defectsynth.data.files import write_image
from defectsynth.errors import DatasetError, OptionError
from defectsynth.formats.dataset import check_output_dir, parse_dataset_spec
from defectsynth.formats.plan import plan_dataset, read_plan
from defectsynth.locks import writes_output
from defectsynth.presets import applies_preset
from defectsynth.progress import track
from defectsynth.sd_backend.pipeline import generate, load_pipeline
from defectsynth.sd_backend.priors import PriorDetector, blend_priors, mask_prior, parse_blend, to_condition_image
from defectsynth.sd_backend.prompts import (
    Captioner,
    build_prompt,
    check_template,
    class_prompt,
    classes_in_mask,
    missing_captions,
    read_captions,
)  # fmt: skip
from defectsynth.seeds import derived_seed

logger = logging.getLogger(__name__)

BACKEND = "sd-adapter"


def plan_of(path: str | Path, stems: list[str]) -> list[tuple[str, int]]:
    """``(condition stem, repeats)`` pairs of a ``balance --plan-out`` file
    (:func:`~defectsynth.formats.plan.read_plan`), every stem one of ``stems``."""
    plan = read_plan(path)
    known = set(stems)
    missing = next((stem for stem, _ in plan if stem not in known), None)
    if missing is not None:
        raise DatasetError(f"plan stem {missing!r} is not among the condition images", path)
    return plan


@dataclass
class Job:
    """One image to generate: the ``repeat``-th redraw of condition ``stem``; ``index`` seeds it."""

    index: int
    stem: str
    repeat: int

    @property
    def out_stem(self) -> str:
        return f"{self.stem}_sd{self.repeat}"


def make_jobs(stems: list[str], plan: list[tuple[str, int]] | None, num_per_condition: int) -> list[Job]:
    pairs = plan if plan is not None else [(s, num_per_condition) for s in stems]
    jobs, done = [], {}
    for stem, repeats in pairs:
        for _ in range(repeats):
            k = done.get(stem, 0)
            done[stem] = k + 1
            jobs.append(Job(len(jobs), stem, k))
    return jobs


def generation_size(height: int, width: int, resolution: int, multiple: int) -> tuple[int, int]:
    """(H, W) with the longer side near ``resolution``, both rounded to a multiple of ``multiple`` (>= 1 multiple)."""
    scale = resolution / max(height, width)
    return tuple(max(multiple, int(round(side * scale / multiple)) * multiple) for side in (height, width))  # type: ignore[return-value]


def resize(array: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """``array`` resized to (H, W) = ``size``: nearest for masks, area when shrinking, bilinear when enlarging."""
    if array.shape[:2] == tuple(size):
        return array
    shrinking = size[0] * size[1] < array.shape[0] * array.shape[1]
    flag = cv2.INTER_NEAREST if nearest else (cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    return cv2.resize(array, (size[1], size[0]), interpolation=flag)


@dataclass
class Prepared:
    """The inputs of one condition image at generation size: priors (H, W) in [0, 1], prompt."""

    sample: Sample
    image: np.ndarray
    image_prior: np.ndarray
    mask_edges: np.ndarray
    blended: np.ndarray
    prompt: str


def prepare_condition(
    sample: Sample, size: tuple[int, int], detector: PriorDetector, blend: tuple[float, float], prompt: str
) -> Prepared:
    """Resize the image (and mask, nearest) to ``size`` and compute its priors (equation 4)."""
    image = resize(sample.image, size)
    image_prior = detector(image)
    edges = mask_prior(resize(sample.mask, size, nearest=True))
    return Prepared(sample, image, image_prior, edges, blend_priors(image_prior, edges, blend), prompt)


def preview_panel(prepared: Prepared) -> np.ndarray:
    """image | image prior | mask prior | blended prior, side by side, (H, 4W + 3 * 4, 3) uint8."""
    gap = np.full((prepared.image.shape[0], 4, 3), 128, np.uint8)
    maps = [to_condition_image(m) for m in (prepared.image_prior, prepared.mask_edges, prepared.blended)]
    return np.concatenate([prepared.image, gap, maps[0], gap, maps[1], gap, maps[2]], axis=1)


def _str(path: str | Path | None) -> str | None:
    return None if path is None else str(path)


def _check_numbers(
    steps: int, guidance: float, resolution: int, batch_size: int, num_per_condition: int, preview: int
) -> None:
    for name, value, low in (("--steps", steps, 1), ("--resolution", resolution, 8), ("--batch-size", batch_size, 1),
                             ("--num-per-condition", num_per_condition, 1), ("--preview", preview, 0)):  # fmt: skip
        if value < low:
            raise OptionError(f"{name} must be at least {low}, got {value}")
    if not np.isfinite(guidance) or guidance < 0:
        raise OptionError(f"--guidance must be a number >= 0, got {guidance}")


def _write_redraws(
    writer: DatasetWriter,
    jobs: list[Job],
    prepared,
    model,
    seed: int,
    generation: dict,
    batch_size: int,
    preview: int,
    progress: bool,
) -> tuple[dict[str, str], dict[str, str]]:
    """Generate every job in batches (flushed early when the generation size changes), write the
    images with their real masks and the first ``preview`` prior previews. Returns
    ({synthetic stem: condition stem}, {synthetic stem: prompt})."""
    condition_of: dict[str, str] = {}
    prompt_of: dict[str, str] = {}
    previews: set[str] = set()
    batch: list[tuple[Job, Prepared]] = []

    def flush() -> None:
        conditions = [to_condition_image(p.blended) for _, p in batch]
        seeds = [derived_seed(seed, job.index) for job, _ in batch]
        images = generate(model, [p.prompt for _, p in batch], conditions, seeds, **generation)
        for (job, prep), image in zip(batch, images):
            real = prep.sample
            writer.add(Sample(job.out_stem, resize(image, real.size), real.mask, real.boxes))
            condition_of[job.out_stem], prompt_of[job.out_stem] = job.stem, prep.prompt
        batch.clear()

    for job in track(jobs, total=len(jobs), description="redrawing", enabled=progress):
        prep = prepared(job.stem)
        if len(previews) < preview and job.stem not in previews:
            write_image(writer.tmp / "previews" / f"{job.stem}.png", preview_panel(prep), durable=False)
            previews.add(job.stem)
        if batch and batch[0][1].image.shape != prep.image.shape:
            flush()
        batch.append((job, prep))
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    return condition_of, prompt_of


@applies_preset("sample_sd")
@writes_output("sample", "out")
def sample_sd(
    conditions: str | Path | None,
    out: str | Path,
    base: str | Path,
    adapter: str | Path | None = None,
    controlnet: str | Path | None = None,
    *,
    plan: str | Path | None = None,
    num_per_condition: int = 1,
    prior: str = "lineart",
    prior_weights: str | Path | None = None,
    blend: str | tuple[float, float] = "0.7,0.9",
    captions: str | Path | None = None,
    captioner: str | Path | None = None,
    prompt_template: str | None = None,
    negative_prompt: str | None = None,
    steps: int = 30,
    guidance: float = 7.5,
    conditioning_scale: float = 1.0,
    resolution: int = 1024,
    seed: int = 0,
    batch_size: int = 1,
    device: str = "auto",
    dtype: str = "auto",
    preview: int = 8,
    overwrite: bool = False,
    progress: bool = True,
    preset: str | dict | None = None,
) -> Path:
    """Redraw the condition images with SDXL + T2I-Adapter (``adapter``) or ControlNet (``controlnet``).

    conditions: ``DATASET`` or ``DATASET:split``, a dataset folder with masks (None: the plan's
    dataset and split). plan: a ``balance --plan-out`` file (which images, how often); without it every condition image
    is redrawn ``num_per_condition`` times. blend: ``"w1,w2"`` of equation 4. resolution: the longer
    side the model draws at (SDXL: 1024); images are resized back to the condition's size.
    preset: a paper preset (:mod:`defectsynth.presets`, ``voc-paper``), recorded in ``source.preset``.
    Returns ``out``, the synthetic dataset folder described in the module docstring.
    """
    # 1. check everything cheap before loading any model
    if conditions is None and plan is None:
        raise OptionError(
            "--conditions DATASET[:split] is required with --backend sd-adapter (or a --plan to take it from)"
        )
    folder, split = parse_dataset_spec(conditions) if conditions is not None else plan_dataset(plan)
    dataset = Dataset(folder)
    if not dataset.has_masks:
        raise DatasetError(
            "the sd-adapter backend keeps the real masks, and this dataset has none (masks/ is missing)", folder
        )
    stems = dataset.select(split)
    weights = parse_blend(blend)
    check_template(prompt_template)
    _check_numbers(steps, guidance, resolution, batch_size, num_per_condition, preview)
    if captions is not None and captioner is not None:
        raise OptionError("give --captions FILE or --captioner DIR, not both")
    jobs = make_jobs(stems, plan_of(plan, stems) if plan is not None else None, num_per_condition)
    if not jobs:
        raise OptionError("nothing to generate: the plan asks for 0 images")
    caption_of = read_captions(captions) if captions is not None else {}
    if captions is not None:
        missing_captions(caption_of, sorted({j.stem for j in jobs}), captions)
    out = Path(out)
    check_output_dir(out, overwrite)
    settings = {
        "steps": steps, "guidance": guidance, "conditioning_scale": conditioning_scale, "seed": seed,
        "blend": list(weights), "prior": prior, "resolution": resolution, "prompt_template": prompt_template,
        "negative_prompt": negative_prompt, "captions": _str(captions), "captioner": _str(captioner),
        "plan": _str(plan),
    }  # fmt: skip
    if preset is not None:
        settings["preset"] = preset

    # 2. models
    model = load_pipeline(base, adapter=adapter, controlnet=controlnet, device=device, dtype=dtype)
    detector = PriorDetector(prior, prior_weights, device=model.device)
    caption_model = Captioner(captioner, device=model.device) if captioner is not None else None

    manifest = Manifest(name=f"{dataset.manifest.name}-sd", classes=dataset.manifest.classes, synthetic=True)
    names = dataset.manifest.class_names
    prepared_of: dict[str, Prepared] = {}

    def prepared(stem: str) -> Prepared:
        if stem not in prepared_of:
            sample = dataset.read(stem)
            size = generation_size(*sample.size, resolution, model.size_multiple)
            caption = caption_of.get(stem) if caption_model is None else caption_model([sample.image])[0]
            prompt = build_prompt(class_prompt(classes_in_mask(sample.mask), names), caption, prompt_template)
            prepared_of.clear()  # jobs of one condition are consecutive: keep one condition in memory
            prepared_of[stem] = prepare_condition(sample, size, detector, weights, prompt)
        return prepared_of[stem]

    # 3. generate in batches of equal generation size; every image seeded by (seed, job index)
    generation = dict(
        steps=steps, guidance=guidance, conditioning_scale=conditioning_scale, negative_prompt=negative_prompt
    )
    with DatasetWriter(out, manifest, overwrite=overwrite) as writer:
        condition_of, prompt_of = _write_redraws(
            writer, jobs, prepared, model, seed, generation, batch_size, preview, progress
        )
        manifest.source = {
            "backend": BACKEND, "base": str(base), model.kind: str(adapter if model.kind == "adapter" else controlnet),
            **settings, "conditions": {"dataset": str(folder), "split": split}, "condition_of": condition_of,
            "prompts": prompt_of,
        }  # fmt: skip
        return writer.commit()
