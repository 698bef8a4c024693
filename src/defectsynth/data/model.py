"""The dataset model: classes, boxes, samples and the manifest (`dataset.json`).

A dataset folder holds, per stem, an RGB image, an optional uint8 class-id mask (0 = background,
255 = ignore) and a list of boxes. Boxes are integer pixel coordinates, half-open: a box
``[x_min, y_min, x_max, y_max]`` covers ``mask[y_min:y_max, x_min:x_max]``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from defectsynth.errors import DatasetError

FORMAT_VERSION = 1
IGNORE_INDEX = 255
STEM_PATTERN = re.compile(r"^[A-Za-z0-9._-]+$")

# Distinct colours for class previews: background black, then a qualitative palette.
DEFAULT_COLORS: list[tuple[int, int, int]] = [
    (0, 0, 0),
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
    (0, 128, 128),
    (220, 190, 255),
    (170, 110, 40),
    (255, 250, 200),
    (128, 0, 0),
]


def default_color(class_id: int) -> tuple[int, int, int]:
    """A preview colour for ``class_id``; cycles deterministically past the palette."""
    if class_id < len(DEFAULT_COLORS):
        return DEFAULT_COLORS[class_id]
    rng = np.random.default_rng(class_id)
    return tuple(int(v) for v in rng.integers(40, 256, size=3))  # type: ignore[return-value]


def check_stem(stem: str, where: object = "stem") -> str:
    """Return ``stem`` if it is a valid stem (``[A-Za-z0-9._-]+``, not ``.``/``..``), else raise."""
    if not isinstance(stem, str) or not STEM_PATTERN.match(stem) or stem in {".", ".."} or ".." in stem:
        raise DatasetError(f"invalid stem {stem!r}: use letters, digits, '.', '_' and '-' only, no '..'", where)
    return stem


def stray_class_ids(mask: Any, class_ids: Iterable[int], ignore: int | None = IGNORE_INDEX) -> list[int]:
    """The values in ``mask`` that are neither one of ``class_ids`` nor ``ignore``, ascending: the one
    rule for "a mask holds only declared classes". mask: an integer NumPy array or torch tensor, any shape."""
    allowed = set(class_ids)
    return [int(v) for v in _present_values(mask) if v not in allowed and v != ignore]


def _present_values(mask: Any) -> list[int]:
    """The distinct values of an integer array or tensor, ascending (a bincount when their range is small)."""
    if hasattr(mask, "unique"):  # a torch tensor (on any device); tensor methods only, no torch import here
        if mask.numel() == 0:
            return []
        low, high = int(mask.min()), int(mask.max())
        if high - low >= 1 << 16:
            return mask.unique().tolist()
        return ((mask.flatten() - low).long().bincount().nonzero().flatten() + low).tolist()
    array = np.asarray(mask)
    if array.dtype == np.uint8:
        return np.flatnonzero(np.bincount(array.ravel(), minlength=256)).tolist()
    return np.unique(array).tolist()


def index_by_stem(
    paths: Iterable[Path], stem_of: Callable[[Path], str] = lambda path: path.stem, what: str = "stem"
) -> dict[str, Path]:
    """``{stem: path}`` for ``paths`` in their order, each stem checked (:func:`check_stem`): the one rule
    for "no two files share a stem". A repeat raises ``"duplicate stem 'x' (also <first file>)"``
    naming the second file; the first by name when both lie in one folder, else by path."""
    found: dict[str, Path] = {}
    for path in paths:
        stem = check_stem(stem_of(path), path)
        if stem in found:
            first = found[stem]
            raise DatasetError(
                f"duplicate {what} {stem!r} (also {first.name if first.parent == path.parent else first})", path
            )
        found[stem] = path
    return found


@dataclass(frozen=True)
class ClassInfo:
    """One class of the dataset. Class 0 is always the background."""

    id: int
    name: str
    color: tuple[int, int, int]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "color": list(self.color)}


@dataclass(frozen=True)
class Box:
    """A labelled box: class id and half-open integer pixel corners ``x_min, y_min, x_max, y_max``."""

    cls: int
    x_min: int
    y_min: int
    x_max: int
    y_max: int

    @property
    def xyxy(self) -> tuple[int, int, int, int]:
        return (self.x_min, self.y_min, self.x_max, self.y_max)

    @property
    def area(self) -> int:
        return max(0, self.x_max - self.x_min) * max(0, self.y_max - self.y_min)

    def to_json(self) -> dict[str, Any]:
        return {"class": self.cls, "box": list(self.xyxy)}

    def problem(self, height: int, width: int) -> str | None:
        """Why this box is invalid in an image of ``height`` x ``width``, or None if it is fine."""
        if self.x_max <= self.x_min or self.y_max <= self.y_min:
            return f"box {list(self.xyxy)} of class {self.cls} is empty or inverted"
        if self.x_min < 0 or self.y_min < 0 or self.x_max > width or self.y_max > height:
            return f"box {list(self.xyxy)} of class {self.cls} lies outside the {width}x{height} image"
        return None


def boxes_to_array(boxes: list[Box]) -> tuple[np.ndarray, np.ndarray]:
    """Boxes as arrays: ``xyxy`` (N, 4) int64 half-open pixel corners and ``classes`` (N,) int64."""
    xyxy = np.array([b.xyxy for b in boxes], dtype=np.int64).reshape(-1, 4)
    classes = np.array([b.cls for b in boxes], dtype=np.int64)
    return xyxy, classes


@dataclass
class Sample:
    """One image with its optional mask and its boxes.

    image: (H, W, 3) uint8 RGB. mask: (H, W) uint8 class ids or None. boxes: list of :class:`Box`.
    """

    stem: str
    image: np.ndarray
    mask: np.ndarray | None = None
    boxes: list[Box] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return int(self.image.shape[0]), int(self.image.shape[1])


@dataclass
class Manifest:
    """The contents of ``dataset.json``."""

    name: str
    classes: list[ClassInfo]
    source: dict[str, Any] = field(default_factory=dict)
    synthetic: bool = False
    stats: dict[str, Any] = field(default_factory=dict)
    format: int = FORMAT_VERSION

    @property
    def num_classes(self) -> int:
        """Number of classes including the background (max id + 1)."""
        return max(c.id for c in self.classes) + 1

    @property
    def class_ids(self) -> set[int]:
        return {c.id for c in self.classes}

    @property
    def class_names(self) -> dict[int, str]:
        return {c.id: c.name for c in self.classes}

    def class_id(self, name: str) -> int:
        for c in self.classes:
            if c.name == name:
                return c.id
        raise DatasetError(f"unknown class {name!r}; known: {', '.join(c.name for c in self.classes)}")

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "format": self.format,
            "name": self.name,
            "classes": [c.to_json() for c in self.classes],
            "source": self.source,
        }
        if self.synthetic:
            data["synthetic"] = True
        if self.stats:
            data["stats"] = self.stats
        return data


def make_classes(names: list[str], colors: dict[str, tuple[int, int, int]] | None = None) -> list[ClassInfo]:
    """Class list with ``background`` at id 0 followed by ``names`` at ids 1..N."""
    colors = colors or {}
    all_names = ["background", *names]
    return [ClassInfo(i, n, tuple(colors.get(n, default_color(i)))) for i, n in enumerate(all_names)]  # type: ignore[arg-type]
