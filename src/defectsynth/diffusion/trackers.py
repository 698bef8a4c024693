"""Experiment trackers for ``train --report-to``: Accelerate's TensorBoard and Weights & Biases trackers.

``report_to`` names one entry of :data:`TRACKERS`; :func:`trackers_for` checks that its package is
installed (one :class:`~defectsynth.errors.MissingDependencyError` line otherwise, before anything
is written) and returns what ``Accelerator(log_with=...)`` takes. :func:`tracking` starts the
trackers (``init_trackers`` with the run's arguments as hyper-parameters) around the training loop
and finishes them however it ends; the loop logs through ``accelerator.log`` (a no-op without
trackers) and :func:`log_preview`.

What is logged: ``loss`` (the batch loss, averaged over processes) and ``lr`` at every step,
``epoch_loss`` (what log.jsonl records) at the end of every epoch, and the preview grids as images
(``preview``) where the tracker takes images. Where the logs go:

- ``tensorboard``: ``<run>/tensorboard/`` (``tensorboard --logdir runs/`` shows every run by name);
- ``wandb``: the W&B project ``defectsynth``, a run named after the run folder, its local files in
  ``<run>/wandb/`` (``WANDB_MODE=offline`` works without an account).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from defectsynth.checks import check_choice
from defectsynth.errors import MissingDependencyError

PROJECT = "defectsynth"
NONE = "none"


@dataclass(frozen=True)
class TrackerKind:
    """A tracker ``--report-to`` can name: the module it needs, the pip extra that installs it,
    and how to build it for a run folder (an :class:`accelerate.tracking.GeneralTracker`)."""

    module: str
    extra: str
    make: Callable[[Path], Any]


def _tensorboard(out: Path):
    from accelerate.tracking import TensorBoardTracker

    return TensorBoardTracker("tensorboard", out)


def _wandb(out: Path):
    from accelerate.tracking import WandBTracker

    return WandBTracker(PROJECT, name=out.name, dir=str(out))


TRACKERS: dict[str, TrackerKind] = {
    "tensorboard": TrackerKind("tensorboard", "tensorboard", _tensorboard),
    "wandb": TrackerKind("wandb", "wandb", _wandb),
}


def check_report_to(report_to: str) -> None:
    """Refuse an unknown tracker, or one whose package is not installed (one line, exit 2)."""
    check_choice("--report-to", report_to, [NONE, *TRACKERS])
    if report_to == NONE:
        return
    kind = TRACKERS[report_to]
    try:
        importlib.import_module(kind.module)
    except ImportError:
        raise MissingDependencyError(
            f"--report-to {report_to}: the {kind.module} package is not installed; pip install "
            f"'defectsynth[{kind.extra}]' (or --report-to none)"
        ) from None


def trackers_for(report_to: str, out: Path) -> list | None:
    """What ``Accelerator(log_with=...)`` takes for ``report_to`` (None for ``none``); checked first."""
    check_report_to(report_to)
    return None if report_to == NONE else [TRACKERS[report_to].make(Path(out))]


def hyperparameters(args: dict[str, Any]) -> dict[str, Any]:
    """The run's arguments as tracker hyper-parameters: numbers, strings and booleans as they are,
    anything else (None, lists) as its text, which every tracker takes."""
    return {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in args.items()}


@contextmanager
def tracking(accelerator, args: dict[str, Any]):
    """Start the accelerator's trackers with ``args`` as their configuration; finish them on the way out.
    (Not ``accelerator.end_training()``: that also ends the process group, which sampling after
    training in the same process still needs.)"""
    if accelerator.log_with:
        accelerator.init_trackers(PROJECT, config=hyperparameters(args))
    try:
        yield
    finally:
        for tracker in accelerator.trackers:
            tracker.finish()


def log_preview(accelerator, grid: np.ndarray, step: int) -> None:
    """Log a preview grid ((H, W, 3) uint8 RGB) to every tracker that takes images (main process)."""
    if not accelerator.is_main_process:
        return
    for tracker in accelerator.trackers:
        if not hasattr(tracker, "log_images"):
            continue
        if tracker.name == "tensorboard":  # SummaryWriter.add_images wants one array and its layout
            tracker.log_images({"preview": grid[None]}, step=step, dataformats="NHWC")
        else:  # wandb and the others: a list of images
            tracker.log_images({"preview": [grid]}, step=step)
