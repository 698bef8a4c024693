"""Low-level file helpers: atomic writes, JSON, and image/mask decoding with clear errors.

Every write goes to a temporary file in the same folder and is renamed over the target, so an
interrupted command never leaves a half-written file. Only PNG/JPEG/BMP images and JSON are read.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from defectsynth.errors import DatasetError, WriteError, first_line

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_UMASK = os.umask(0o022)  # read once at import (os.umask can only be read by setting it) ...
os.umask(_UMASK)  # ... and restored at once


def atomic_write_bytes(path: str | Path, data: bytes, durable: bool = True) -> None:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename.

    ``durable`` also fsyncs the file before the rename (survives a power cut, not only a killed
    process). Writers that build a whole folder under a temporary name pass False and sync once.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def is_temp_leftover(path: Path) -> bool:
    """Whether ``path`` is the temporary file of an :func:`atomic_write_bytes` that was killed
    before its rename (``.<name>.<random>.tmp``)."""
    return path.name.startswith(".") and path.name.endswith(".tmp") and path.is_file()


def remove_temp_leftovers(folder: str | Path) -> int:
    """Delete the temporary files killed atomic writes left anywhere under ``folder``; returns how many.

    Call it only where this process is the folder's single writer (another writer's file may be
    in flight)."""
    found = [p for p in Path(folder).rglob(".*.tmp") if is_temp_leftover(p)]
    for path in found:
        path.unlink(missing_ok=True)
    return len(found)


def holds_no_files(folder: str | Path) -> bool:
    """Whether ``folder`` holds nothing but empty folders and killed atomic writes' temporary
    files: what a command killed before it wrote its first file leaves behind."""
    for path in Path(folder).rglob("*"):
        if not path.is_dir() and not is_temp_leftover(path):
            return False
    return True


@contextmanager
def write_errors(where: str | Path, what: str = "the output") -> Iterator[None]:
    """Turn a failed write inside the block (a full disk, no permission) into one :class:`WriteError`
    naming ``where`` and the file; what was written before stays (every write is atomic)."""
    try:
        yield
    except OSError as err:
        name = f" {Path(err.filename).name}" if err.filename else ""
        raise WriteError(
            f"cannot write {what}{name} ({err.strerror or err}); the files written before are intact", where
        ) from None


# Inside a partial folder: which command builds it for which target, so that the next run of the
# same command on the same target can prove a killed run's leftover is its own (remove_stale_partials).
PARTIAL_MARKER = ".defectsynth-partial.json"


def partial_dir(target: str | Path, command: str | None = None) -> Path:
    """A new hidden folder ``.<name>.partial-<x>`` beside ``target`` to build its replacement in
    (see :func:`replace_dir`); with ``command`` it holds a marker naming the command and ``target``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    tmp.chmod(0o777 & ~_UMASK)  # mkdtemp makes 0700; the folder ends up as a normal one
    if command is not None:
        write_json(tmp / PARTIAL_MARKER, _partial_owner(target, command), durable=False)
    return tmp


def _partial_owner(target: Path, command: str) -> dict[str, str]:
    return {"command": command, "target": str(target.resolve())}


def remove_stale_partials(target: str | Path, command: str) -> int:
    """Delete the partial folders of ``target`` that killed runs of ``command`` left (their marker
    names both); returns how many. Others, without a marker or of another command, stay.

    Call it only while holding ``target``'s output lock (:func:`defectsynth.locks.output_lock`): then
    no live writer of ``target`` is building one.
    """
    target = Path(target)
    removed = 0
    for folder in target.parent.glob(f".{target.name}.partial-*"):
        try:
            owner = json.loads((folder / PARTIAL_MARKER).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if owner == _partial_owner(target, command):
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


def replace_dir(tmp: str | Path, target: str | Path, backup: str | Path | None = None) -> None:
    """Move the finished folder ``tmp`` (its marker removed) to ``target``, replacing any folder there:
    the old one is renamed aside first (to ``backup``, default ``.<name>.old-<tmp's suffix>``) and
    removed only once the new one is in place. Everything written is flushed to disk before the
    rename, so files written inside ``tmp`` may skip their own fsync."""
    tmp, target = Path(tmp), Path(target)
    (tmp / PARTIAL_MARKER).unlink(missing_ok=True)
    os.sync()
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)
    if target.exists():
        backup = (
            Path(backup)
            if backup is not None
            else target.with_name(f".{target.name}.old-{tmp.name.rsplit('-', 1)[-1]}")
        )
        target.rename(backup)
    else:
        backup = None
    tmp.rename(target)
    if backup is not None:
        shutil.rmtree(backup)


def write_dir(folder: str | Path, write: Callable[[Path], object]) -> Path:
    """Write the folder ``folder`` atomically: ``write(tmp)`` fills ``.<name>.partial`` beside it, which
    then replaces ``folder`` through :func:`replace_dir` (the old one renamed aside to ``.<name>.old``).
    On any error the partial folder is removed and ``folder`` is left as it was; a kill leaves either
    folder complete (a run's resume puts a ``.<name>.old`` back). For folders with one writer (a run's
    weights, a saved segmenter); outputs that several commands may race for use :func:`partial_dir`."""
    folder = Path(folder)
    tmp = folder.with_name(f".{folder.name}.partial")
    folder.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace_dir(tmp, folder, folder.with_name(f".{folder.name}.old"))
    return folder


def write_json(path: str | Path, data: Any, durable: bool = True) -> None:
    """Write ``data`` as indented UTF-8 JSON, atomically."""
    text = json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False)
    atomic_write_bytes(path, (text + "\n").encode("utf-8"), durable)


def _reject_constant(value: str) -> float:
    raise ValueError(f"{value} is not allowed")


def read_text(path: str | Path) -> str:
    """Read a UTF-8 text file; a missing file or other bytes raise one clear :class:`DatasetError`."""
    try:
        return read_bytes(path).decode("utf-8")
    except UnicodeDecodeError:
        raise DatasetError("not UTF-8 text", path) from None


def read_json(path: str | Path) -> Any:
    """Read a JSON file; a missing file or malformed JSON raises one clear :class:`DatasetError`."""
    path = Path(path)
    text = read_text(path)
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError as err:
        raise DatasetError(f"malformed JSON ({err})", path) from None


def check_format(data: Any, path: Path, supported: int) -> dict[str, Any]:
    """``data`` (read from ``path``) as a JSON object whose integer ``format`` is not newer than
    ``supported``; anything else raises one clear :class:`DatasetError` naming ``path``."""
    if not isinstance(data, dict):
        raise DatasetError(f"{path.name} must hold a JSON object", path)
    fmt = data.get("format")
    if not isinstance(fmt, int) or isinstance(fmt, bool):
        raise DatasetError(f"'format' must be an integer, got {fmt!r}", path)
    if fmt > supported:
        raise DatasetError(
            f"format {fmt} is newer than this defectsynth supports ({supported}): upgrade defectsynth", path
        )
    return data


_NEVER_UNPICKLED = "defectsynth never unpickles: convert it with safetensors.torch.save_file"


def check_safetensors(path: str | Path) -> Path:
    """Raise one clear :class:`DatasetError` unless ``path`` is a readable safetensors file (checks the
    header only). A pickle or a ``torch.save`` archive is named as such and never loaded."""
    from safetensors import safe_open

    path = Path(path)
    with read_errors(path):
        with open(path, "rb") as handle:
            head = handle.read(8)
    if not head:
        raise DatasetError("empty file (0 bytes)", path)
    if head.startswith(b"PK\x03\x04"):
        raise DatasetError(f"holds a torch.save archive (a pickle), not safetensors; {_NEVER_UNPICKLED}", path)
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        raise DatasetError(f"holds a pickle, not safetensors; {_NEVER_UNPICKLED}", path)
    try:
        with safe_open(str(path), framework="pt"):
            pass
    except Exception as err:  # safetensors raises its own SafetensorError, or OSError/ValueError
        raise DatasetError(f"not a safetensors file or truncated ({first_line(err)})", path) from None
    return path


def read_safetensors(path: str | Path) -> dict[str, Any]:
    """The tensors of a safetensors file, checked first by :func:`check_safetensors` (never unpickled)."""
    from safetensors.torch import load_file

    path = check_safetensors(path)
    try:
        return load_file(str(path))
    except Exception as err:  # a header that promises more data than the file holds
        raise DatasetError(f"not a safetensors file or truncated ({first_line(err)})", path) from None


def encode_png(array: np.ndarray, path: str | Path = "image.png") -> bytes:
    """PNG bytes of an (H, W) uint8 mask or an (H, W, 3) uint8 RGB image."""
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", array)
    if not ok:
        raise DatasetError("could not encode PNG", path)
    return buf.tobytes()


def encode_image(image: np.ndarray, suffix: str = ".png", quality: int = 95) -> bytes:
    """Encoded bytes of an (H, W, 3) uint8 RGB image as PNG or JPEG."""
    if suffix in (".jpg", ".jpeg"):
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise DatasetError("could not encode JPEG")
        return buf.tobytes()
    return encode_png(image)


def write_image(path: str | Path, image: np.ndarray, durable: bool = True) -> None:
    """Write an RGB image (PNG or JPEG by suffix), atomically."""
    path = Path(path)
    atomic_write_bytes(path, encode_image(image, path.suffix.lower()), durable)


def write_mask(path: str | Path, mask: np.ndarray, durable: bool = True) -> None:
    """Write an (H, W) uint8 class-id mask as PNG, atomically."""
    atomic_write_bytes(path, encode_png(np.ascontiguousarray(mask, dtype=np.uint8), path), durable)


_REDUCE_FLAGS = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


@contextmanager
def read_errors(path: str | Path) -> Iterator[None]:
    """Turn a missing, folder or unreadable ``path`` met inside the block into one :class:`DatasetError`."""
    try:
        yield
    except FileNotFoundError:
        raise DatasetError("file not found", path) from None
    except IsADirectoryError:
        raise DatasetError("is a folder, expected a file", path) from None
    except OSError as err:
        raise DatasetError(f"cannot read ({err.strerror})", path) from None


def read_bytes(path: str | Path) -> bytes:
    """The bytes of ``path``; a missing or unreadable file raises one clear :class:`DatasetError`."""
    with read_errors(path):
        return Path(path).read_bytes()


def _decode_raw(data: bytes, flags: int, where: str | Path) -> np.ndarray:
    if len(data) == 0:
        raise DatasetError("empty file (0 bytes)", where)
    array = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    if array is None:
        raise DatasetError("unreadable or truncated image", where)
    return array


def _read_raw(path: Path, flags: int) -> np.ndarray:
    return _decode_raw(read_bytes(path), flags, path)


def decode_image(data: bytes, where: str | Path = "image", reduce: int = 1) -> np.ndarray:
    """Decode encoded image bytes (from a file or a zip member) as (H, W, 3) uint8 RGB.

    Grayscale images are expanded to RGB and fully opaque RGBA images lose their alpha channel;
    16-bit images and images with real transparency are refused. ``reduce`` (1, 2, 4 or 8) lets
    the JPEG decoder downscale while decoding (to ceil(W / reduce) x ceil(H / reduce)), which is
    much faster for large photographs. ``where`` names the file in error messages.
    """
    array = _decode_raw(data, _REDUCE_FLAGS.get(reduce, cv2.IMREAD_UNCHANGED), where)
    if array.dtype != np.uint8:
        raise DatasetError(f"{array.dtype} image: only 8-bit images are supported, convert it first", where)
    if array.ndim == 2:
        return np.ascontiguousarray(np.repeat(array[:, :, None], 3, axis=2))
    if array.shape[2] == 4:
        if array[:, :, 3].min() < 255:
            raise DatasetError("image has transparent pixels (RGBA): flatten it to RGB first", where)
        array = array[:, :, :3]
    if array.shape[2] != 3:
        raise DatasetError(f"image has {array.shape[2]} channels, expected RGB", where)
    return cv2.cvtColor(array, cv2.COLOR_BGR2RGB)


def read_image(path: str | Path, reduce: int = 1) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB; see :func:`decode_image` for ``reduce``."""
    return decode_image(read_bytes(path), path, reduce)


def read_mask(path: str | Path) -> np.ndarray:
    """Read a class-id mask as (H, W) uint8; colour masks and 16-bit masks are refused."""
    path = Path(path)
    array = _read_raw(path, cv2.IMREAD_UNCHANGED)
    if array.dtype != np.uint8:
        raise DatasetError(f"{array.dtype} mask: masks must be 8-bit class ids", path)
    if array.ndim == 3:
        raise DatasetError(f"mask has {array.shape[2]} channels: masks must be single-channel class ids", path)
    return array


def read_color_mask(path: str | Path) -> np.ndarray:
    """Read a colour-coded mask as (H, W, 3) uint8 RGB (gray masks are expanded)."""
    return read_image(path)


def find_image(folder: Path, stem: str, suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> Path | None:
    """The file ``folder/stem.<suffix>`` for the first suffix that exists (any letter case), or None."""
    for suffix in suffixes:
        for candidate in (folder / f"{stem}{suffix}", folder / f"{stem}{suffix.upper()}"):
            if candidate.is_file():
                return candidate
    return None


def finite_int(value: Any, what: str, path: str | Path) -> int:
    """``value`` as an int if it is an integral finite number, else a :class:`DatasetError`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DatasetError(f"{what} must be a number, got {value!r}", path)
    if isinstance(value, float) and (not math.isfinite(value) or not value.is_integer()):
        raise DatasetError(f"{what} must be an integer pixel coordinate, got {value!r}", path)
    return int(value)
