"""A folder of images with same-stem mask images: the layout most users already have.

Layouts (in ``source_dir``, or in each class folder with ``class_from_folder``)::

    images/<stem>.jpg + masks/<stem>.png          (also imgs/, labels/, gt/, ground_truth/;
                                                    the mask may be <stem>_mask.png)
    <stem>.jpg + <stem>_mask.png side by side      (suffixes _mask, -mask, _label, _gt, _seg)
    <stem>.jpg + <stem>.png side by side           (a non-PNG image and a PNG mask of one stem)

Masks are read as:

- class ids (single channel, or RGB with three equal channels): ids 1..N are the classes, named
  by ``classes="scratch,dent"`` or ``class1..classN`` (N = the largest id found); 255 = ignore;
- binary 0/255: when every mask holds only 0 and 255 (and at most one class is named), 255 is the
  defect class (``defect`` or the one name given);
- colours, with ``palette=FILE``: a JSON object ``{"scratch": [255, 0, 0], "dent": [0, 0, 255]}``
  (classes in file order; ``"background"`` sets the background colour, black otherwise); a
  colour missing from the palette is an error;
- ``class_from_folder``: one subfolder per class, named after it; every nonzero mask pixel belongs
  to that class. Stems become ``<folder>_<stem>``. Folders named in ``background_folder``
  (``good``, ``Free``, ``OK`` ...) hold defect-free images; their masks, if any, are not read.

Boxes: one per 8-connected component of each class, computed by ``prepare`` after resizing (so
they are exact at the output size); components under ``min_box_area`` output pixels are dropped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from defectsynth.checks import check_at_least
from defectsynth.data.colors import colors_to_ids, pack_rgb
from defectsynth.data.files import IMAGE_SUFFIXES, _read_raw, read_image, read_json
from defectsynth.data.model import (
    IGNORE_INDEX,
    Manifest,
    Sample,
    check_stem,
    index_by_stem,
    make_classes,
    stray_class_ids,
)
from defectsynth.data.sources import SourceData
from defectsynth.errors import DatasetError, OptionError

IMAGE_DIRS = ("images", "image", "imgs", "img")
MASK_DIRS = ("masks", "mask", "labels", "label", "gt", "ground_truth", "annotations")
MASK_SUFFIXES = ("_mask", "-mask", "_label", "_gt", "_seg")


@dataclass(frozen=True)
class Pair:
    """An image and its mask (None in a background folder)."""

    stem: str
    image: Path
    mask: Path | None
    cls: int | None = None  # the class of its folder with class_from_folder; 0 for background folders


def _files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )


def _child(folder: Path, names: tuple[str, ...]) -> Path | None:
    for path in sorted(folder.iterdir()):
        if path.is_dir() and path.name.lower() in names:
            return path
    return None


def _mask_base(stem: str) -> str | None:
    for suffix in MASK_SUFFIXES:
        if stem.lower().endswith(suffix) and len(stem) > len(suffix):
            return stem[: -len(suffix)]
    return None


def _split_folder(folder: Path, masks_needed: bool) -> list[tuple[str, Path, Path | None]]:
    """(stem, image, mask) triples of ``folder`` in any of the layouts of the module docstring."""
    image_dir, mask_dir = _child(folder, IMAGE_DIRS), _child(folder, MASK_DIRS)
    if image_dir is not None:
        images = index_by_stem(_files(image_dir))
        mask_files = _files(mask_dir) if mask_dir is not None else []
    else:
        files = _files(folder)
        stems = {p.stem for p in files}
        is_mask = [
            p
            for p in files
            if (_mask_base(p.stem) in stems)
            or (p.suffix.lower() == ".png" and any(q.stem == p.stem and q.suffix.lower() != ".png" for q in files))
        ]
        images = index_by_stem([p for p in files if p not in is_mask])
        mask_files = is_mask
    masks: dict[str, Path] = {}
    for path in mask_files:
        base = path.stem if path.stem in images else _mask_base(path.stem) or path.stem
        if base not in images:
            raise DatasetError("mask without an image of the same stem", path)
        if base in masks:
            raise DatasetError(f"two masks for image {base!r} (also {masks[base].name})", path)
        masks[base] = path
    if not images:
        raise DatasetError(
            "no images found (expected images/ + masks/, or images with same-stem masks beside them)", folder
        )
    triples = []
    for stem, image in images.items():
        if masks_needed and stem not in masks:
            raise DatasetError("mask missing for this image", image)
        triples.append((stem, image, masks.get(stem) if masks_needed else None))
    return triples


def _comma_list(text: str | None) -> list[str]:
    return [v.strip() for v in (text or "").split(",") if v.strip()]


def read_palette(path: Path) -> tuple[list[str], dict[int, int]]:
    """Class names (file order) and the packed-colour lookup of a ``--palette`` JSON file."""
    data: Any = read_json(path)
    if not isinstance(data, dict) or not data:
        raise DatasetError('palette must be a JSON object {"class name": [r, g, b], ...}', path)
    names, lookup = [], {}
    for name, rgb in data.items():
        if not isinstance(rgb, list) or len(rgb) != 3 or not all(isinstance(v, int) and 0 <= v <= 255 for v in rgb):
            raise DatasetError(f"colour of {name!r} must be [r, g, b] with 0..255, got {rgb!r}", path)
        cls = 0 if name == "background" else len(names) + 1
        if pack_rgb(rgb) in lookup:
            raise DatasetError(f"colour {rgb} is used twice", path)
        lookup[pack_rgb(rgb)] = cls
        if cls:
            names.append(str(name))
    if len(names) > IGNORE_INDEX - 1:
        raise DatasetError(f"{len(names)} classes: at most 254 fit in a uint8 mask", path)
    if 0 not in lookup.values():
        lookup[0] = 0
    return names, lookup


def read_id_mask(path: Path) -> np.ndarray:
    """A class-id mask as (H, W) uint8: single channel, or RGB(A) with equal channels."""
    array = _read_raw(path, cv2.IMREAD_UNCHANGED)
    if array.dtype != np.uint8:
        raise DatasetError(f"{array.dtype} mask: masks must be 8-bit", path)
    if array.ndim == 3:
        if not (np.array_equal(array[:, :, 0], array[:, :, 1]) and np.array_equal(array[:, :, 0], array[:, :, 2])):
            raise DatasetError("mask has colours: pass --palette FILE to map them to classes", path)
        array = np.ascontiguousarray(array[:, :, 0])
    return array


def _folder_pairs(source: Path, background: list[str]) -> tuple[list[str], list[Pair]]:
    folders = sorted(p for p in source.iterdir() if p.is_dir() and not p.name.startswith("."))
    names = [p.name for p in folders]
    missing = [b for b in background if b not in names]
    if missing:
        raise OptionError(
            f"--background-folder: no folder {', '.join(missing)} in {source} (folders: {', '.join(names) or 'none'})"
        )
    classes = [n for n in names if n not in background]
    if not classes:
        raise DatasetError("no class folders found (with --class-from-folder each subfolder is a class)", source)
    pairs = []
    for folder in folders:
        check_stem(folder.name, folder)
        is_background = folder.name in background
        cls = 0 if is_background else classes.index(folder.name) + 1
        for stem, image, mask in _split_folder(folder, masks_needed=not is_background):
            pairs.append(Pair(f"{folder.name}_{stem}", image, mask, cls))
    return classes, pairs


def _id_classes(pairs: list[Pair], names: list[str]) -> tuple[list[str], bool]:
    """Class names and whether masks are binary 0/255, from a scan of every mask."""
    first: dict[int, Path] = {}
    for pair in pairs:
        if pair.mask is not None:
            for value in np.unique(read_id_mask(pair.mask)).tolist():
                first.setdefault(int(value), pair.mask)
    values = set(first)
    if values <= {0, IGNORE_INDEX} and IGNORE_INDEX in values and len(names) <= 1:
        return names or ["defect"], True
    top = max(values - {IGNORE_INDEX}, default=0)
    stray = stray_class_ids(np.array(sorted(values)), range(len(names) + 1)) if names else []
    if stray:
        raise DatasetError(
            f"mask holds class id {stray[-1]}, outside the {len(names)} declared classes ({', '.join(names)})",
            first[stray[-1]],
        )
    return names or [f"class{i}" for i in range(1, top + 1)], False


def import_masks(
    source_dir: Path | None = None,
    classes: str | None = None,
    palette: Path | None = None,
    class_from_folder: bool = False,
    background_folder: str | None = None,
    min_box_area: int = 1,
) -> SourceData:
    """Import images with same-stem masks from ``source_dir``; see the module docstring."""
    if source_dir is None:
        raise OptionError("the masks source needs --source DIR")
    source = Path(source_dir)
    if not source.is_dir():
        raise DatasetError("source folder not found", source)
    check_at_least("--min-box-area", min_box_area)
    background = _comma_list(background_folder)
    if background and not class_from_folder:
        raise OptionError("--background-folder needs --class-from-folder")
    if palette is not None and (classes or class_from_folder):
        raise OptionError("--palette names the classes itself: drop --classes / --class-from-folder")
    lookup: dict[int, int] | None = None
    binary = False
    if class_from_folder:
        if classes:
            raise OptionError("--classes cannot be used with --class-from-folder (the folder names are the classes)")
        names, pairs = _folder_pairs(source, background)
    else:
        pairs = [Pair(s, i, m) for s, i, m in _split_folder(source, masks_needed=True)]
        if palette is not None:
            names, lookup = read_palette(Path(palette))
        else:
            names, binary = _id_classes(pairs, _comma_list(classes))
    if len(names) > IGNORE_INDEX - 1:
        raise DatasetError(f"{len(names)} classes: at most 254 fit in a uint8 mask", source)
    manifest = Manifest(
        name=source.name or "masks",
        classes=make_classes(names),
        source={
            "importer": "masks",
            "source_dir": str(source),
            "mask_format": _format(class_from_folder, lookup, binary),
            "palette": str(palette) if palette else None,
            "background_folders": background,
            "min_box_area": min_box_area,
        },
    )
    samples = _samples(pairs, len(names), lookup, binary, class_from_folder)
    return SourceData(manifest, samples, total=len(pairs), boxes_from_mask=True, min_box_area=min_box_area)


def _format(class_from_folder: bool, lookup: dict | None, binary: bool) -> str:
    return "class-from-folder" if class_from_folder else "palette" if lookup else "binary" if binary else "class-ids"


def _read_mask(pair: Pair, num: int, lookup: dict[int, int] | None, binary: bool, by_folder: bool) -> np.ndarray:
    """The (H, W) uint8 class ids of ``pair.mask`` (never None here) in the dataset's mask format."""
    if lookup is not None:
        return colors_to_ids(read_image(pair.mask), lookup, pair.mask, "the palette")
    if by_folder:
        array = _read_raw(pair.mask, cv2.IMREAD_UNCHANGED)
        nonzero = array.any(axis=2) if array.ndim == 3 else array > 0
        return nonzero.astype(np.uint8) * np.uint8(pair.cls)
    mask = read_id_mask(pair.mask)
    if binary:
        return (mask == IGNORE_INDEX).astype(np.uint8)
    stray = stray_class_ids(mask, range(num + 1))
    if stray:
        raise DatasetError(f"mask holds class ids {stray}, outside the {num} declared classes", pair.mask)
    return mask


def _samples(
    pairs: list[Pair], num: int, lookup: dict[int, int] | None, binary: bool, by_folder: bool
) -> Iterator[Sample]:
    for pair in pairs:
        image = read_image(pair.image)
        if pair.mask is None:
            yield Sample(pair.stem, image, np.zeros(image.shape[:2], dtype=np.uint8))
            continue
        mask = _read_mask(pair, num, lookup, binary, by_folder)
        if mask.shape != image.shape[:2]:
            raise DatasetError(
                f"mask is {mask.shape[1]}x{mask.shape[0]} but the image is {image.shape[1]}x{image.shape[0]}", pair.mask
            )
        yield Sample(pair.stem, image, mask)
