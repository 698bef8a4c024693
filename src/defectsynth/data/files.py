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
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from defectsynth.errors import DatasetError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_UMASK = os.umask(0o022)  # read once at import (os.umask can only be read by setting it) ...
os.umask(_UMASK)  # ... and restored at once


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def partial_dir(target: str | Path) -> Path:
    """A new hidden folder beside ``target`` to build its replacement in (see :func:`replace_dir`)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    tmp.chmod(0o777 & ~_UMASK)  # mkdtemp makes 0700; the folder ends up as a normal one
    return tmp


def replace_dir(tmp: str | Path, target: str | Path) -> None:
    """Move the finished folder ``tmp`` to ``target``, replacing any folder there: the old one is
    renamed aside first and removed only once the new one is in place."""
    tmp, target = Path(tmp), Path(target)
    backup = None
    if target.exists():
        backup = target.with_name(f".{target.name}.old-{tmp.name.rsplit('-', 1)[-1]}")
        target.rename(backup)
    tmp.rename(target)
    if backup is not None:
        shutil.rmtree(backup)


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented UTF-8 JSON, atomically."""
    text = json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False)
    atomic_write_bytes(path, (text + "\n").encode("utf-8"))


def _reject_constant(value: str) -> float:
    raise ValueError(f"{value} is not allowed")


def read_json(path: str | Path) -> Any:
    """Read a JSON file; a missing file or malformed JSON raises one clear :class:`DatasetError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError("file not found", path) from None
    except UnicodeDecodeError:
        raise DatasetError("not UTF-8 text", path) from None
    except OSError as err:
        raise DatasetError(f"cannot read ({err.strerror})", path) from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError as err:
        raise DatasetError(f"malformed JSON ({err})", path) from None


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


def write_image(path: str | Path, image: np.ndarray) -> None:
    """Write an RGB image (PNG or JPEG by suffix), atomically."""
    path = Path(path)
    atomic_write_bytes(path, encode_image(image, path.suffix.lower()))


def write_mask(path: str | Path, mask: np.ndarray) -> None:
    """Write an (H, W) uint8 class-id mask as PNG, atomically."""
    atomic_write_bytes(path, encode_png(np.ascontiguousarray(mask, dtype=np.uint8), path))


def _read_raw(path: Path, flags: int) -> np.ndarray:
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except FileNotFoundError:
        raise DatasetError("file not found", path) from None
    except OSError as err:
        raise DatasetError(f"cannot read ({err.strerror})", path) from None
    if data.size == 0:
        raise DatasetError("empty file (0 bytes)", path)
    array = cv2.imdecode(data, flags)
    if array is None:
        raise DatasetError("unreadable or truncated image", path)
    return array


def read_image(path: str | Path, reduce: int = 1) -> np.ndarray:
    """Read an image as (H, W, 3) uint8 RGB.

    Grayscale images are expanded to RGB and fully opaque RGBA images lose their alpha channel;
    16-bit images and images with real transparency are refused. ``reduce`` (1, 2, 4 or 8) lets
    the JPEG decoder downscale while decoding, which is much faster for large photographs.
    """
    path = Path(path)
    flags = cv2.IMREAD_UNCHANGED
    if reduce in (2, 4, 8):
        flags = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}[reduce]
    array = _read_raw(path, flags)
    if array.dtype != np.uint8:
        raise DatasetError(f"{array.dtype} image: only 8-bit images are supported, convert it first", path)
    if array.ndim == 2:
        return np.ascontiguousarray(np.repeat(array[:, :, None], 3, axis=2))
    if array.shape[2] == 4:
        if array[:, :, 3].min() < 255:
            raise DatasetError("image has transparent pixels (RGBA): flatten it to RGB first", path)
        array = array[:, :, :3]
    if array.shape[2] != 3:
        raise DatasetError(f"image has {array.shape[2]} channels, expected RGB", path)
    return cv2.cvtColor(array, cv2.COLOR_BGR2RGB)


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
