"""The run folder that ``train`` writes and ``sample``, ``push`` and the pipeline read::

    runs/<name>/
      run.json                   the arguments of train(), classes, channel layout, schedule, latent, versions
      model_index.json           the diffusers pipeline index (pixel-space runs; :mod:`defectsynth.pipeline`)
      unet/, unet_ema/           weights: config.json + diffusion_pytorch_model.safetensors
      scheduler/scheduler_config.json
      checkpoint-<step>/         resume state (:mod:`defectsynth.diffusion.checkpoint`)

This module holds the layout, reads and checks run.json and picks the weights folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from defectsynth.data.files import check_format, read_json
from defectsynth.errors import DatasetError

RUN_FORMAT = 1
CHECKPOINT_PREFIX = "checkpoint-"
# Every file train writes in a run folder (formats.dataset.in_layout patterns): what demo --overwrite may replace.
RUN_LAYOUT = (
    "run.json",
    "log.jsonl",
    "loss.png",
    "unet/*",
    "unet_ema/*",
    "scheduler/*",
    f"{CHECKPOINT_PREFIX}*/*",
    "previews/*.png",
)

# What sampling and resuming read from run.json, with its JSON type.
RUN_KEYS = {"args": dict, "classes": list, "num_classes": int, "dataset": dict, "size": list, "layout": dict}


def read_run_json(path: Path) -> dict[str, Any]:
    """Read ``run.json`` (written by :func:`~defectsynth.diffusion.training.run_json`) and check its format and the keys
    others read."""
    info = check_format(read_json(path), Path(path), RUN_FORMAT)
    wrong = [repr(k) for k, kind in RUN_KEYS.items() if not isinstance(info.get(k), kind)]
    if wrong:
        raise DatasetError(
            f"not a run.json written by defectsynth train: {', '.join(wrong)} missing or of the wrong type", path
        )
    return info


def read_run_folder(root: Path) -> dict[str, Any]:
    """The checked run.json of the run folder ``root``; a folder without one is refused."""
    if not (root / "run.json").is_file():
        raise DatasetError("not a run folder: run.json is missing (create one with `defectsynth train`)", root)
    return read_run_json(root / "run.json")


def weights_folder(root: Path, ema: bool = True) -> Path:
    """``unet_ema/`` when ``ema`` and the run has it, else ``unet/``."""
    return root / "unet_ema" if ema and (root / "unet_ema").is_dir() else root / "unet"
