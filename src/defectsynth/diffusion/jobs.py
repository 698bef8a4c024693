"""What ``sample`` draws: one job per sample (index, output stem, condition stem, boxes or mask),
planned from ``--conditions``/``--num`` or a ``balance --plan-out`` file, and its condition tensor."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from defectsynth.data import Box, Dataset
from defectsynth.data.resize import resize_sample
from defectsynth.diffusion.conditioning import condition_tensor, onehot_tensor
from defectsynth.diffusion.mask_augment import MaskAugment
from defectsynth.diffusion.trained_run import Run
from defectsynth.encoding import boxes_from_mask
from defectsynth.errors import DatasetError, OptionError
from defectsynth.formats.dataset import parse_dataset_spec
from defectsynth.formats.plan import plan_dataset, planned_samples, read_plan
from defectsynth.seeds import derived_seed


@dataclass
class Job:
    index: int
    stem: str
    condition: str | None
    boxes: list[Box]
    mask: np.ndarray | None = None  # cond mask: the (augmented) condition mask, (H, W) uint8


def job_condition(
    job: Job, size: tuple[int, int], cond: str, num_classes: int, class_fill: str = "inside"
) -> torch.Tensor:
    """(C_c, H, W) condition of one job: the one-hot mask for cond ``mask``, else the box maps
    (``class_fill``: the run's ``train --class-fill``)."""
    if cond == "mask":
        return onehot_tensor(job.mask, num_classes)
    return condition_tensor(job.boxes, size, cond, num_classes, class_fill)


def parse_conditions(text: str | None, run: Run) -> tuple[Path, str | None]:
    """``DATASET[:split]`` -> (dataset folder, split); default: the run's training dataset and split."""
    if text is None:
        return Path(run.info["dataset"]["path"]), run.info["dataset"]["split"]
    path, split = parse_dataset_spec(text)
    if not (path / "dataset.json").is_file():
        raise OptionError(f"--conditions: {path} is not a dataset folder (expected DATASET[:split])")
    return path, split


def plan_jobs(
    run: Run, conditions: str | None, num: int | None, mask_augment: bool = False, seed: int = 0
) -> tuple[list[Job], dict[str, Any]]:
    """Every sample to draw, in index order, and the ``conditions`` provenance entry.

    For cond ``mask`` each job carries its condition mask, randomly warped when ``mask_augment``
    (seeded by (seed, sample index)), and the boxes of that mask.
    """
    if num is not None and num < 1:
        raise OptionError(f"--num: must be >= 1, got {num}")
    if run.args["cond"] == "none":
        if num is None:
            raise OptionError("--num is required for an unconditional run (--cond none)")
        if conditions is not None:
            raise OptionError("--conditions cannot be used with an unconditional run (--cond none): it takes no boxes")
        return [Job(i, f"sample-{i:06d}", None, []) for i in range(num)], {"dataset": None, "split": None}
    path, split = parse_conditions(conditions, run)
    ds = Dataset(path)
    stems = ds.select(split)
    if not stems:
        raise OptionError(f"--conditions: no images in {path}" + (f" split {split}" if split else ""))
    reps = 1 if num is None else math.ceil(num / len(stems))
    total = len(stems) if num is None else num
    pairs = [(f"{stem}-{k}", stem) for k in range(reps) for stem in stems][:total]
    return condition_jobs(run, ds, pairs, mask_augment, seed), {
        "dataset": str(path.resolve()),
        "split": split,
        "mask_augment": mask_augment,
    }


def condition_jobs(
    run: Run, ds: Dataset, pairs: list[tuple[str, str]], mask_augment: bool = False, seed: int = 0
) -> list[Job]:
    """Job ``i`` draws output stem ``pairs[i][0]`` from condition ``pairs[i][1]`` of ``ds``, at the run's size.

    Box-conditioned runs take the condition's boxes. Mask-conditioned runs (cond ``mask``) take its
    mask, randomly warped when ``mask_augment`` (seeded by (seed, sample index)), and that mask's boxes.
    A dataset declaring other classes than the run is refused: its class ids would be read as the run's.
    """
    theirs, ours = ds.manifest.class_names, {c.id: c.name for c in run.classes}
    if theirs != ours:
        raise DatasetError(
            f"--conditions: classes {theirs} differ from {ours} of the run {run.root}: condition on a dataset "
            "with the run's classes",
            ds.root / "dataset.json",
        )
    cond = run.args["cond"]
    if mask_augment and cond != "mask":
        raise OptionError("--mask-augment needs a mask-conditioned run (--cond mask)")
    if cond == "mask" and not ds.has_masks:
        raise OptionError(f"--conditions: {ds.root} has no masks, which a mask-conditioned run (--cond mask) needs")
    size = tuple(run.info["size"])
    resized = {stem: resize_sample(ds.read(stem), size) for stem in dict.fromkeys(c for _, c in pairs)}
    jobs = [
        Job(i, stem, c, resized[c].boxes, resized[c].mask if cond == "mask" else None)
        for i, (stem, c) in enumerate(pairs)
    ]
    if mask_augment:
        augment = MaskAugment()
        for job in jobs:
            job.mask = augment(job.mask, np.random.default_rng(derived_seed(seed, job.index, 0xA06)))
    if cond == "mask":
        for job in jobs:
            job.boxes = boxes_from_mask(job.mask)
    return jobs


def plan_file_jobs(
    run: Run, plan: str | Path, mask_augment: bool = False, seed: int = 0
) -> tuple[list[Job], dict[str, Any]]:
    """The jobs of a ``balance --plan-out`` file (:func:`~defectsynth.formats.plan.planned_samples`), conditioned
    on its dataset, and the ``conditions`` provenance entry."""
    plan = Path(plan)
    if run.args["cond"] == "none":
        raise OptionError("--plan cannot be used with an unconditional run (--cond none): it takes no boxes")
    pairs = planned_samples(read_plan(plan))
    if not pairs:
        raise DatasetError("the plan lists no generations: nothing to sample", plan)
    folder, split = plan_dataset(plan)
    ds = Dataset(folder)
    known = set(ds.stems)
    missing = next((c for _, c in pairs if c not in known), None)
    if missing is not None:
        raise DatasetError(f"plan stem {missing!r} is not in the plan's dataset {ds.root}", plan)
    jobs = condition_jobs(run, ds, pairs, mask_augment, seed)
    return jobs, {"dataset": str(ds.root.resolve()), "split": split, "mask_augment": mask_augment}
