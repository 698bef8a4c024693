"""The conditions cache that ``encode-boxes`` writes inside a dataset folder::

    <dataset>/
      conditions/<stem>.npz          basd (H, W) float32, cbasd (H, W) uint8, xyxy (N, 4) int32,
                                     classes (N,) int32, class_fill () str; no pickled objects
      conditions/preview/<stem>.png  image | BASD | C-BASD, for the first ``preview`` stems

Its writer, reader (never unpickling) and the copy into a new dataset folder
(:func:`copy_conditions`, for ``balance`` and ``filter``); the maps themselves are computed by
:mod:`defectsynth.encoding.conditions`.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np

from defectsynth.data.files import atomic_write_bytes
from defectsynth.errors import DatasetError

CONDITIONS_DIR = "conditions"


PREVIEW_DIR = "preview"


def read_conditions(path: str | Path) -> dict[str, np.ndarray | str]:
    """Read one ``conditions/<stem>.npz`` (never unpickling): ``basd`` (H, W) float32, ``cbasd``
    (H, W) uint8, ``xyxy`` (N, 4) int32, ``classes`` (N,) int32 and ``class_fill`` (str)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in ("basd", "cbasd", "xyxy", "classes", "class_fill")}
    except FileNotFoundError:
        raise DatasetError("conditions file not found (run `defectsynth encode-boxes`)", path) from None
    except (KeyError, ValueError, OSError) as err:
        raise DatasetError(f"not a conditions file written by encode-boxes ({err})", path) from None
    basd, cbasd = arrays["basd"], arrays["cbasd"]
    if basd.dtype != np.float32 or cbasd.dtype != np.uint8 or basd.ndim != 2 or basd.shape != cbasd.shape:
        raise DatasetError(
            f"basd/cbasd must be (H, W) float32/uint8, got {basd.shape} {basd.dtype}, {cbasd.shape} {cbasd.dtype}", path
        )
    arrays["class_fill"] = str(arrays["class_fill"])
    return arrays


def copy_conditions(source: str | Path, stems: list[str], target: str | Path) -> int:
    """Copy the cached ``conditions/<stem>.npz`` of ``stems`` from dataset folder ``source`` into the
    (unfinished) dataset folder ``target``, for commands that write a new folder from old samples.
    Stems without a cache are skipped. Returns how many files were copied."""
    copied = 0
    for stem in stems:
        cached = Path(source) / CONDITIONS_DIR / f"{stem}.npz"
        if cached.is_file():
            (Path(target) / CONDITIONS_DIR).mkdir(exist_ok=True)
            shutil.copyfile(cached, Path(target) / CONDITIONS_DIR / cached.name)
            copied += 1
    return copied


def write_conditions(
    path: Path, basd: np.ndarray, cbasd: np.ndarray, xyxy: np.ndarray, classes: np.ndarray, class_fill: str
) -> None:
    """Write one ``conditions/<stem>.npz`` (compressed, no pickled objects)."""
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        basd=basd,
        cbasd=cbasd,
        xyxy=xyxy.astype(np.int32),
        classes=classes.astype(np.int32),
        class_fill=np.array(class_fill),
    )
    atomic_write_bytes(path, buffer.getvalue(), durable=False)  # inside a partial dir: replace_dir syncs
