"""The output folder of ``sample``: a dataset folder plus ``.sampling/`` (settings.json, so that a
rerun resumes only an identical request, and one ``<stem>.json`` per finished sample); the
``--overwrite`` rule, writing one sample, and dataset.json with statistics at the end."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from defectsynth.data import Box, Dataset, Manifest
from defectsynth.data.files import holds_no_files, read_json, remove_temp_leftovers, write_image, write_json, write_mask
from defectsynth.diffusion.jobs import Job
from defectsynth.diffusion.trained_run import Run
from defectsynth.errors import OutputExistsError
from defectsynth.formats.dataset import DatasetStats, check_replaceable
from defectsynth.ranks import one_outcome


def check_output(out: Path, settings: dict[str, Any], overwrite: bool) -> str:
    """What to do with ``out``: ``"create"``, ``"resume"`` (same settings) or ``"replace"`` (--overwrite).

    Read-only, so every process can check before any of them writes.
    """
    marker = out / ".sampling" / "settings.json"
    if not out.exists() or (out.is_dir() and holds_no_files(out)):  # new, or left by a run killed at once
        return "create"
    same = marker.is_file() and read_json(marker) == settings
    if not overwrite:
        if same:
            return "resume"
        reason = "was written with other settings" if marker.is_file() else "is not a sampling output"
        raise OutputExistsError(f"output folder exists and {reason}: choose another --out or pass --overwrite", out)
    if not (marker.is_file() or (out / "dataset.json").is_file()):
        raise OutputExistsError("--overwrite only replaces a dataset or sampling folder, and this is neither", out)
    check_replaceable(out)
    return "replace"


def open_output(out: Path, settings: dict[str, Any], action: str) -> None:
    """Main process: (re)create the folder layout and write the settings marker."""
    if action == "replace":
        shutil.rmtree(out)
    elif out.is_dir():
        remove_temp_leftovers(out)  # half-written files of a killed run: its samples are redrawn
    for sub in ("images", "boxes", ".sampling"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    write_json(out / ".sampling" / "settings.json", settings)


def write_sample(
    out: Path, job: Job, image: np.ndarray, mask: np.ndarray | None, boxes: list[Box], invalid: int
) -> None:
    """Write one sample's files atomically; its ``.sampling/<stem>.json`` last marks it done."""
    write_image(out / "images" / f"{job.stem}.png", image)
    if mask is not None:
        write_mask(out / "masks" / f"{job.stem}.png", mask)
    write_json(out / "boxes" / f"{job.stem}.json", [b.to_json() for b in boxes])
    write_json(
        out / ".sampling" / f"{job.stem}.json",
        {"index": job.index, "condition": job.condition, "invalid_codes": invalid},
    )


def is_done(out: Path, job: Job) -> bool:
    return (out / ".sampling" / f"{job.stem}.json").is_file()


def my_pending_jobs(state, out: Path, settings: dict[str, Any], overwrite: bool, jobs: list[Job]) -> list[Job]:
    """Check ``out`` on every process, (re)create it on the main process (:func:`check_output`,
    :func:`open_output`), then this process's share of the jobs not done yet."""
    with one_outcome(state):
        action = check_output(out, settings, overwrite)
    with one_outcome(state):
        if state.is_main_process:
            open_output(out, settings, action)
    pending = [j for j in jobs if not is_done(out, j)]
    return pending[state.process_index :: state.num_processes]


def write_manifest(out: Path, run: Run, jobs: list[Job], settings: dict[str, Any]) -> Manifest:
    """dataset.json with provenance, then statistics read back from the files on disk."""
    manifest = Manifest(name=f"{run.root.name}-samples", classes=run.classes, synthetic=True)
    manifest.source = {
        **settings,
        "images": "mask colours" if run.args["target"] == "mask" else "generated",
        "condition_of": {j.stem: j.condition for j in jobs if j.condition is not None},
    }
    write_json(out / "dataset.json", manifest.to_json())
    written = Dataset(out)
    stats = DatasetStats(manifest.num_classes)
    invalid = 0
    for job in jobs:
        stats.add(written.read(job.stem))
        invalid += read_json(out / ".sampling" / f"{job.stem}.json")["invalid_codes"]
    manifest.stats = {**stats.to_json(manifest), "invalid_mask_pixels": invalid}
    write_json(out / "dataset.json", manifest.to_json())
    return manifest
