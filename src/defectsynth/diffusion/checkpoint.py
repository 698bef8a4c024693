"""Saving and loading run state with safetensors and JSON only (nothing is ever unpickled).

A resume checkpoint ``checkpoint-<step>/``::

    model.safetensors        the training weights (unwrapped)
    ema.safetensors          the EMA weights (absent without EMA)
    optimizer.safetensors    every tensor of optimizer.state_dict()["state"], keyed "<param index>.<name>"
    optimizer.json           param_groups and non-tensor state values
    rng-<rank>.safetensors   torch (and CUDA) RNG states of each process as uint8 tensors
    rng-<rank>.json          Python and NumPy RNG states
    trainer.json             step, epoch, position in the epoch, best loss, loss sums, grad-scaler state

A checkpoint is written under ``.checkpoint-<step>.partial`` and renamed when complete, so a killed
run never leaves a half-written checkpoint; only the newest ``limit`` are kept. A folder is deleted
by renaming it to a hidden ``.<name>.old`` first, so a kill while deleting never leaves a
``checkpoint-<step>/`` (or ``unet/``) with files missing; :func:`clean_leftovers` tidies up what
a killed run left behind.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from defectsynth.data.files import read_json, read_safetensors, remove_temp_leftovers, write_dir, write_json
from defectsynth.errors import DatasetError, summary
from defectsynth.formats.run import CHECKPOINT_PREFIX


# -- optimizer -------------------------------------------------------------------------------------
def flatten_optimizer(state_dict: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into named tensors and a JSON-able rest."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, values in state_dict["state"].items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{name}"] = value.detach().contiguous().cpu()
            else:
                scalars.setdefault(str(index), {})[name] = value
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in state_dict["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars, "tuple_keys": _tuple_keys(state_dict)}


def _tuple_keys(state_dict: dict[str, Any]) -> list[str]:
    return sorted({k for g in state_dict["param_groups"] for k, v in g.items() if isinstance(v, tuple)})


def unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`flatten_optimizer`."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    for index, values in meta["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    tuple_keys = set(meta.get("tuple_keys", []))
    groups = [{k: (tuple(v) if k in tuple_keys else v) for k, v in g.items()} for g in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


# -- random number generators ----------------------------------------------------------------------
def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """This process's RNG states: torch/CUDA as uint8 tensors, Python/NumPy as JSON."""
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{i}"] = s
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["numpy"] = torch.from_numpy(np.asarray(keys, dtype=np.uint32).view(np.uint8).copy())
    meta = {"python": [version, list(internal), gauss], "numpy": [kind, int(pos), int(has_gauss), float(cached)]}
    return tensors, meta


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Restore the states written by :func:`rng_state`."""
    torch.set_rng_state(tensors["torch"])
    if torch.cuda.is_available():
        cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("cuda."))]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((kind, tensors["numpy"].numpy().view(np.uint32), pos, has_gauss, cached))


# -- weights ---------------------------------------------------------------------------------------
def state_tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}


def save_pretrained_atomic(model: Any, folder: Path) -> None:
    """``model.save_pretrained(folder)`` (safetensors + config.json) through a temporary folder;
    on any error the temporary folder is removed and ``folder`` is left as it was."""
    write_dir(folder, lambda tmp: model.save_pretrained(tmp, safe_serialization=True))


def _old(folder: Path) -> Path:
    return folder.with_name(f".{folder.name}.old")


def discard_dir(folder: Path) -> None:
    """Delete ``folder`` by renaming it aside first: a kill never leaves it half deleted."""
    if folder.exists():
        old = _old(folder)
        shutil.rmtree(old, ignore_errors=True)
        folder.rename(old)
        shutil.rmtree(old, ignore_errors=True)


def clean_leftovers(run: Path, weights: tuple[str, ...] = ("unet", "unet_ema")) -> None:
    """Before resuming ``run`` (this process its only writer): put back a weights folder a kill
    left renamed aside, and delete partial and half-deleted folders and the temporary files of
    killed atomic writes (loss.png, previews)."""
    for name in weights:
        if not (run / name).exists() and (_old(run / name) / "config.json").is_file():
            _old(run / name).rename(run / name)
    for pattern in (".*.partial", ".*.old"):
        for leftover in run.glob(pattern):
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
    remove_temp_leftovers(run)


# -- checkpoints -----------------------------------------------------------------------------------
def checkpoint_dirs(run: Path) -> list[Path]:
    """Complete checkpoints of ``run``, oldest first."""
    found = [p for p in run.glob(f"{CHECKPOINT_PREFIX}*") if p.is_dir() and p.name[len(CHECKPOINT_PREFIX) :].isdigit()]
    found = [p for p in found if (p / "trainer.json").is_file()]
    return sorted(found, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX) :]))


def partial_dir(run: Path, step: int) -> Path:
    return run / f".{CHECKPOINT_PREFIX}{step}.partial"


def write_process_state(folder: Path, rank: int) -> None:
    """Every process writes its own RNG state into the (partial) checkpoint folder."""
    folder.mkdir(parents=True, exist_ok=True)
    tensors, meta = rng_state()
    save_file(tensors, str(folder / f"rng-{rank}.safetensors"))
    write_json(folder / f"rng-{rank}.json", meta)


def write_main_state(
    folder: Path,
    model: torch.nn.Module,
    ema: torch.nn.Module | None,
    optimizer: torch.optim.Optimizer,
    trainer: dict[str, Any],
) -> None:
    """The main process writes weights, optimizer and trainer state (``trainer.json`` last)."""
    folder.mkdir(parents=True, exist_ok=True)
    save_file(state_tensors(model), str(folder / "model.safetensors"))
    if ema is not None:
        save_file(state_tensors(ema), str(folder / "ema.safetensors"))
    tensors, meta = flatten_optimizer(optimizer.state_dict())
    save_file(tensors, str(folder / "optimizer.safetensors"))
    write_json(folder / "optimizer.json", meta)
    write_json(folder / "trainer.json", trainer)


def finish_checkpoint(run: Path, step: int, limit: int | None) -> Path:
    """Rename the partial folder into ``checkpoint-<step>`` and prune to the newest ``limit``."""
    final = run / f"{CHECKPOINT_PREFIX}{step}"
    discard_dir(final)
    partial_dir(run, step).rename(final)
    if limit:
        for old in checkpoint_dirs(run)[:-limit]:
            discard_dir(old)
    return final


def load_checkpoint(
    folder: Path, model: torch.nn.Module, ema: torch.nn.Module | None, optimizer: torch.optim.Optimizer, rank: int
) -> dict[str, Any]:
    """Load weights, optimizer, this process's RNG state; return ``trainer.json``.

    A missing, truncated or pickled file, or one that does not fit this run, raises one
    :class:`~defectsynth.errors.DatasetError` naming it; nothing is written.
    """
    trainer = read_json(folder / "trainer.json")
    try:
        model.load_state_dict(read_safetensors(folder / "model.safetensors"))
        if ema is not None and (folder / "ema.safetensors").is_file():
            ema.load_state_dict(read_safetensors(folder / "ema.safetensors"))
        device = next(model.parameters()).device
        tensors = {
            k: v.to(device) if not k.endswith(".step") else v
            for k, v in read_safetensors(folder / "optimizer.safetensors").items()
        }
        optimizer.load_state_dict(unflatten_optimizer(tensors, read_json(folder / "optimizer.json")))
        rng_file = folder / f"rng-{rank}.safetensors"
        if rng_file.is_file():
            set_rng_state(read_safetensors(rng_file), read_json(folder / f"rng-{rank}.json"))
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError, AttributeError) as err:
        raise DatasetError(
            f"not a checkpoint written by defectsynth train for this run ({summary(err)})", folder
        ) from None
    if not isinstance(trainer, dict):
        raise DatasetError("trainer.json must hold a JSON object", folder / "trainer.json")
    return trainer


def dumps(data: Any) -> str:
    return json.dumps(data, sort_keys=True)
