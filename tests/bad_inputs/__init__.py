"""Builders for the bad-input corpus (tests/test_bad_inputs.py): a workspace of copied inputs, broken files.

A :class:`Workspace` copies the module's tiny inputs (a 16 px toy dataset, a tiny run, a synthetic
dataset, a saved segmenter) into ``<root>/in`` on first use and hands out output paths under
``<root>/outs``. :func:`tree_digest` hashes every name (folders and hidden files included, bytes
names as they are) and every file's bytes under ``root``, so one comparison before and after a
command proves that the inputs are untouched and that nothing was left behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np


@dataclass(frozen=True)
class World:
    """The pristine inputs, built once per test module (never changed: cases work on copies)."""

    data: Path  # toy dataset, 8 images of 16x16, splits train/val/test
    run: Path  # tiny run trained on it, with checkpoint-1/
    synth: Path  # 3 samples drawn from the run
    segmenter: Path  # an smp network folder (config.json + model.safetensors)


class Workspace:
    """Copies of the world's inputs under ``root/in``; outputs go under ``root/outs``."""

    def __init__(self, root: Path, world: World):
        self.root, self.world = root, world
        self.inputs, self.outs = root / "in", root / "outs"
        self.inputs.mkdir()
        self.outs.mkdir()

    def _copy(self, source: Path, name: str) -> Path:
        target = self.inputs / name
        if not target.exists():
            shutil.copytree(source, target)
        return target

    @property
    def data(self) -> Path:
        return self._copy(self.world.data, "toy")

    @property
    def run(self) -> Path:
        return self._copy(self.world.run, "run")

    @property
    def synth(self) -> Path:
        return self._copy(self.world.synth, "synth")

    @property
    def segmenter(self) -> Path:
        return self._copy(self.world.segmenter, "segmenter")

    def out(self, name: str = "out") -> Path:
        return self.outs / name

    def first(self, dataset: Path, sub: str = "images") -> Path:
        """The first file of ``dataset/sub``."""
        return sorted((dataset / sub).iterdir())[0]


def tree_digest(root: Path) -> str:
    """sha256 over every path name (bytes, hidden ones too, folders included) and file content under ``root``."""
    h = hashlib.sha256()
    for folder, dirs, files in os.walk(bytes(root)):
        dirs.sort()
        for name in sorted(dirs):
            h.update(b"D" + os.path.join(folder, name))
        for name in sorted(files):
            path = os.path.join(folder, name)
            h.update(b"F" + path)
            with open(path, "rb") as handle:
                h.update(hashlib.sha256(handle.read()).digest())
    return h.hexdigest()


# -- broken files ------------------------------------------------------------------------------------
def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data), encoding="utf-8")


def write_png(path: Path, array: np.ndarray) -> None:
    """Write ``array`` as PNG exactly as given: uint16 stays 16-bit, 4 channels stay BGRA (cv2 order)."""
    ok, buf = cv2.imencode(".png", array)
    assert ok
    path.write_bytes(buf.tobytes())


def image_16bit(h: int = 16, w: int = 16) -> np.ndarray:
    return (np.arange(h * w * 3, dtype=np.uint16).reshape(h, w, 3) * 97) % 65535


def image_rgba(h: int = 16, w: int = 16, alpha: int = 128) -> np.ndarray:
    array = np.full((h, w, 4), 200, np.uint8)
    array[..., 3] = alpha
    return array


class _Trap:
    """Unpickling this object creates the file ``marker``: proof that something was unpickled."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def pickle_bytes(marker: Path) -> bytes:
    """A pickle that, if ever loaded, creates ``marker`` (with the protocol torch.save uses)."""
    return pickle.dumps({"weight": _Trap(marker)}, protocol=2)


def torch_save_bytes(tmp: Path) -> bytes:
    """What ``torch.save`` writes (a zip archive holding a pickle) for a small state dict."""
    import torch

    torch.save({"weight": torch.zeros(2)}, tmp)
    data = tmp.read_bytes()
    tmp.unlink()
    return data
