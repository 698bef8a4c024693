"""The run folder that ``train`` writes and ``sample``, ``push`` and the pipeline read::

    runs/<name>/
      run.json                   the arguments of train(), classes, channel layout, schedule, latent, versions
      model_index.json           the diffusers pipeline index (pixel-space runs; :mod:`defectsynth.pipeline`)
      unet/, unet_ema/           weights: config.json + diffusion_pytorch_model.safetensors
      scheduler/scheduler_config.json
      checkpoint-<step>/         resume state (:mod:`defectsynth.diffusion.checkpoint`)

This module holds the layout, writes, reads and checks run.json, decides whether a folder can take a
new run or resume one (the overwrite rule), and picks the weights folder. What goes into run.json is
training's (:func:`~defectsynth.diffusion.training.run_record`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from defectsynth.data.files import check_format, holds_no_files, read_json, write_json
from defectsynth.errors import DatasetError, OutputExistsError

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
    """Read ``run.json`` (written by :func:`write_run_json`) and check its format and the keys others read."""
    info = check_format(read_json(path), Path(path), RUN_FORMAT)
    _check_keys(info, path)
    return info


def write_run_json(out: Path, record: dict[str, Any]) -> None:
    """Write ``out/run.json`` atomically: the format number, ``record`` (train's arguments, classes,
    dataset, size, layout, latent, unet, schedule) and the versions of the libraries that trained it."""
    import accelerate
    import diffusers
    import torch

    import defectsynth

    versions = {
        "defectsynth": defectsynth.__version__,
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "accelerate": accelerate.__version__,
    }
    info = {"format": RUN_FORMAT, **record, "versions": versions}
    _check_keys(info, out / "run.json")
    write_json(out / "run.json", info)


def _check_keys(info: dict[str, Any], path: Path) -> None:
    wrong = [repr(k) for k, kind in RUN_KEYS.items() if not isinstance(info.get(k), kind)]
    if wrong:
        raise DatasetError(
            f"not a run.json written by defectsynth train: {', '.join(wrong)} missing or of the wrong type", path
        )


def previous_run(out: Path, resume: bool) -> dict[str, Any] | None:
    """The overwrite rule of run folders: the checked run.json of ``out`` when ``resume`` continues it,
    None for a new run (``out`` missing or without files); a run folder without ``resume``, or a folder
    holding anything else, is refused."""
    if (out / "run.json").is_file():
        if not resume:
            raise OutputExistsError("run folder exists: pass --resume to continue it, or choose another --out", out)
        return read_run_json(out / "run.json")
    if out.exists() and (not out.is_dir() or not holds_no_files(out)):
        raise OutputExistsError("output folder exists and is not a defectsynth run: choose another --out", out)
    return None


def read_run_folder(root: Path) -> dict[str, Any]:
    """The checked run.json of the run folder ``root``; a folder without one is refused."""
    if not (root / "run.json").is_file():
        raise DatasetError("not a run folder: run.json is missing (create one with `defectsynth train`)", root)
    return read_run_json(root / "run.json")


def weights_folder(root: Path, ema: bool = True) -> Path:
    """``unet_ema/`` when ``ema`` and the run has it, else ``unet/``."""
    return root / "unet_ema" if ema and (root / "unet_ema").is_dir() else root / "unet"
