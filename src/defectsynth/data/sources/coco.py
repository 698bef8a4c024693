"""COCO instances files: reading, polygon and RLE rasterisation, and the ``coco`` importer.

An instances file is ``{"images": [{"id", "file_name", "width", "height"}, ...],
"annotations": [{"id", "image_id", "category_id", "segmentation", "bbox", "iscrowd"}, ...],
"categories": [{"id", "name"}, ...]}``. ``segmentation`` is a list of polygons
``[[x0, y0, x1, y1, ...], ...]`` or an RLE ``{"size": [H, W], "counts": ...}`` whose counts are a
list of run lengths (uncompressed) or pycocotools' compressed string. Both are decoded here in
numpy and OpenCV, without pycocotools.

Geometry: COCO coordinates are continuous, pixel (row i, column j) covers [j, j+1) x [i, i+1).
A pixel belongs to a polygon when its centre lies inside (even-odd rule; centres on a left or top
edge count, on a right or bottom edge do not), so integer rectangles fill exactly their pixels. ``bbox`` is
``[x, y, w, h]`` in the same coordinates; it becomes the half-open pixel box
``[floor(x), floor(y), ceil(x+w), ceil(y+h)]``.

The ``coco`` importer maps the categories, in id order, to classes 1..N; annotations are painted in
file order (later ones on top), each with its box. ``iscrowd`` is not treated specially: for
semantic masks a crowd region is still that class, and CVAT exports brush-drawn masks as crowd RLEs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from defectsynth.data.files import decode_image, finite_int, read_bytes, read_json
from defectsynth.data.model import IGNORE_INDEX, Box, Manifest, Sample, check_stem, make_classes
from defectsynth.data.resize import scale_box
from defectsynth.data.sources import SourceData
from defectsynth.errors import DatasetError, OptionError

_EPS = 1e-3  # tolerance for float coordinates that should be integral


@dataclass
class CocoImage:
    """One entry of ``images`` with its annotations (in file order)."""

    id: int
    file_name: str
    width: int
    height: int
    annotations: list[dict[str, Any]] = field(default_factory=list)
    origin: str = ""  # the instances file, for error messages

    @property
    def stem(self) -> str:
        return PurePosixPath(self.file_name).stem

    def where(self, ann: dict[str, Any]) -> str:
        """Names an annotation in error messages: ``file.json (annotation 7, a.jpg)``."""
        return f"{self.origin} (annotation {ann.get('id', '?')}, {self.file_name})"


@dataclass
class CocoIndex:
    """A parsed instances file: images in file order and category id -> name."""

    path: str
    images: list[CocoImage]
    categories: dict[int, str]


def _require_list(data: dict, key: str, path: str) -> list:
    value = data.get(key)
    if not isinstance(value, list):
        raise DatasetError(f"not a COCO instances file: {key!r} must be a list", path)
    return value


def check_file_name(file_name: Any, path: str) -> str:
    """A relative, clean ``file_name`` with a valid stem; absolute paths and '..' are refused."""
    if not isinstance(file_name, str) or not file_name:
        raise DatasetError(f"image file_name must be a non-empty string, got {file_name!r}", path)
    pure = PurePosixPath(file_name.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts:
        raise DatasetError(f"image file_name {file_name!r} points outside the images folder", path)
    check_stem(pure.stem, f"{path}: image {file_name!r}")
    return str(pure)


def parse_coco(data: Any, path: str | Path) -> CocoIndex:
    """Validate a COCO instances JSON object; every problem names ``path`` and the entry."""
    path = str(path)
    if not isinstance(data, dict):
        raise DatasetError("not a COCO instances file: expected a JSON object", path)
    categories: dict[int, str] = {}
    for cat in _require_list(data, "categories", path):
        if not isinstance(cat, dict) or "id" not in cat or "name" not in cat:
            raise DatasetError(f"each category needs 'id' and 'name', got {cat!r}", path)
        categories[finite_int(cat["id"], "category id", path)] = str(cat["name"])
    images: dict[int, CocoImage] = {}
    stems: dict[str, str] = {}
    for entry in _require_list(data, "images", path):
        if not isinstance(entry, dict) or not {"id", "file_name", "width", "height"} <= set(entry):
            raise DatasetError(f"each image needs 'id', 'file_name', 'width' and 'height', got {entry!r}", path)
        name = check_file_name(entry["file_name"], path)
        image = CocoImage(
            finite_int(entry["id"], "image id", path),
            name,
            finite_int(entry["width"], f"{name}: width", path),
            finite_int(entry["height"], f"{name}: height", path),
            origin=path,
        )
        if image.width < 1 or image.height < 1:
            raise DatasetError(f"image {name!r} has size {image.width}x{image.height}", path)
        if image.stem in stems:
            raise DatasetError(f"duplicate stem {image.stem!r}: {stems[image.stem]!r} and {name!r}", path)
        stems[image.stem] = name
        images[image.id] = image
    for k, ann in enumerate(_require_list(data, "annotations", path)):
        if not isinstance(ann, dict) or "image_id" not in ann or "category_id" not in ann:
            raise DatasetError(f"annotation {k} needs 'image_id' and 'category_id'", path)
        image_id = finite_int(ann["image_id"], f"annotation {k} image_id", path)
        category = finite_int(ann["category_id"], f"annotation {k} category_id", path)
        if image_id not in images:
            raise DatasetError(
                f"annotation {ann.get('id', k)} refers to image id {image_id}, which is not in 'images'", path
            )
        if category not in categories:
            raise DatasetError(
                f"annotation {ann.get('id', k)} has category id {category}, which is not in 'categories'", path
            )
        images[image_id].annotations.append(ann)
    return CocoIndex(path, list(images.values()), categories)


def load_coco(path: str | Path) -> CocoIndex:
    """Read and validate a COCO instances file."""
    return parse_coco(read_json(path), path)


# -- masks ------------------------------------------------------------------------------------
def rle_counts(counts: Any, where: str) -> list[int]:
    """Run lengths of an RLE: a list of ints as is, or pycocotools' compressed string decoded.

    The string packs each count in 5-bit groups (offset by 48, bit 0x20 = more groups follow,
    bit 0x10 of the last group = negative); from the third count on, counts are stored as the
    difference to the count two places before.
    """
    if isinstance(counts, list):
        if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
            raise DatasetError("RLE counts must be non-negative integers", where)
        return counts
    if not isinstance(counts, str):
        raise DatasetError(f"RLE counts must be a list or a string, got {type(counts).__name__}", where)
    values: list[int] = []
    pos = 0
    while pos < len(counts):
        value, shift, more = 0, 0, True
        while more:
            if pos >= len(counts):
                raise DatasetError("truncated compressed RLE string", where)
            code = ord(counts[pos]) - 48
            if not 0 <= code < 64:
                raise DatasetError(f"invalid character {counts[pos]!r} in compressed RLE", where)
            value |= (code & 0x1F) << shift
            more = bool(code & 0x20)
            pos += 1
            shift += 5
            if not more and code & 0x10:
                value |= -1 << shift
        if len(values) > 2:
            value += values[-2]
        if value < 0:
            raise DatasetError("compressed RLE decodes to a negative run length", where)
        values.append(value)
    return values


def rle_decode(segmentation: dict, height: int, width: int, where: str) -> np.ndarray:
    """An RLE as an (H, W) bool mask. Runs alternate 0, 1, 0, ... in column-major order."""
    size = segmentation.get("size")
    if size != [height, width]:
        raise DatasetError(f"RLE size {size} differs from the image size [{height}, {width}]", where)
    counts = rle_counts(segmentation.get("counts"), where)
    if sum(counts) != height * width:
        raise DatasetError(f"RLE covers {sum(counts)} pixels but the image has {height * width}", where)
    values = np.zeros(len(counts), dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, counts)
    return flat.reshape(width, height).T


def fill_polygon(canvas: np.ndarray, xy: np.ndarray) -> None:
    """Set the pixels of ``canvas`` ((H, W) bool) whose centres lie inside the polygon ``xy``.

    xy: (N, 2) float continuous coordinates (pixel column j spans [j, j+1)). An even-odd scanline
    fill, vectorised over rows and edges: each row's centre line y + 0.5 is cut by the edges, the
    crossings are sorted and paired, and pixel j of a span [a, b) is set when a <= j + 0.5 < b.
    So a rectangle with integer corners fills exactly mask[y0:y1, x0:x1] (cv2.fillPoly would also
    fill the last row and column it touches).
    """
    height, width = canvas.shape
    x0, y0 = xy[:, 0], xy[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    first, last = max(0, math.ceil(y0.min() - 0.5)), min(height, math.ceil(y0.max() - 0.5))
    if last <= first:
        return
    rows = np.arange(first, last)
    centre = rows[:, None] + 0.5
    crosses = (y0[None, :] <= centre) != (y1[None, :] <= centre)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (centre - y0[None, :]) / (y1 - y0)[None, :]
    xs = np.where(crosses, x0[None, :] + t * (x1 - x0)[None, :], np.inf)
    xs.sort(axis=1)
    if xs.shape[1] % 2:
        xs = np.concatenate([xs, np.full((len(rows), 1), np.inf)], axis=1)
    starts, ends = xs[:, 0::2], xs[:, 1::2]
    valid = np.isfinite(starts) & np.isfinite(ends)
    row_index = np.broadcast_to(np.arange(len(rows))[:, None], starts.shape)[valid]
    j0 = np.clip(np.ceil(starts[valid] - 0.5), 0, width).astype(np.int64)
    j1 = np.clip(np.ceil(ends[valid] - 0.5), 0, width).astype(np.int64)
    diff = np.zeros((len(rows), width + 1), dtype=np.int32)
    np.add.at(diff, (row_index, j0), 1)
    np.add.at(diff, (row_index, j1), -1)
    canvas[first:last] |= np.cumsum(diff[:, :width], axis=1) > 0


def reduced_shape(height: int, width: int, reduce: int) -> tuple[int, int]:
    """The size a JPEG decoder gives at 1/``reduce`` scale: (ceil(H / reduce), ceil(W / reduce))."""
    return -(-height // reduce), -(-width // reduce)


def polygon_mask(polygons: list, height: int, width: int, where: str, reduce: int = 1) -> np.ndarray:
    """Polygons (COCO coordinates in a ``height`` x ``width`` image) filled on the 1/``reduce`` grid.

    Returns (ceil(H / reduce), ceil(W / reduce)) bool: output pixel j covers source [j*r, (j+1)*r).
    """
    canvas = np.zeros(reduced_shape(height, width, reduce), dtype=bool)
    for poly in polygons:
        if not isinstance(poly, list) or len(poly) < 6 or len(poly) % 2:
            raise DatasetError("each polygon must be a flat list [x0, y0, x1, y1, ...] of at least 3 points", where)
        try:
            xy = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
        except (TypeError, ValueError):
            raise DatasetError("polygon coordinates must be numbers", where) from None
        if not np.isfinite(xy).all():
            raise DatasetError("polygon coordinates must be finite", where)
        fill_polygon(canvas, xy / reduce)
    return canvas


def annotation_mask(ann: dict, height: int, width: int, where: str, reduce: int = 1) -> np.ndarray:
    """The pixels of one annotation (polygons or RLE) on the 1/``reduce`` grid, (ceil(H/r), ceil(W/r)) bool.

    RLE masks are decoded at full size and sampled at the centre of each r x r cell.
    """
    segmentation = ann.get("segmentation")
    if isinstance(segmentation, list):
        return polygon_mask(segmentation, height, width, where, reduce)
    if isinstance(segmentation, dict):
        full = rle_decode(segmentation, height, width, where)
        if reduce == 1:
            return full
        out_h, out_w = reduced_shape(height, width, reduce)
        rows = np.minimum(np.arange(out_h) * reduce + reduce // 2, height - 1)
        cols = np.minimum(np.arange(out_w) * reduce + reduce // 2, width - 1)
        return full[np.ix_(rows, cols)]
    raise DatasetError(f"'segmentation' must be polygons or an RLE, got {type(segmentation).__name__}", where)


def annotation_box(ann: dict, cls: int, height: int, width: int, where: str) -> Box:
    """The COCO ``bbox`` [x, y, w, h] as a half-open pixel :class:`Box` of class ``cls``; checked."""
    bbox = ann.get("bbox")
    if (
        not isinstance(bbox, list)
        or len(bbox) != 4
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox)
    ):
        raise DatasetError(f"'bbox' must be [x, y, width, height], got {bbox!r}", where)
    x, y, w, h = (float(v) for v in bbox)
    if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
        raise DatasetError(f"bbox {bbox} is empty", where)
    box = Box(cls, math.floor(x + _EPS), math.floor(y + _EPS), math.ceil(x + w - _EPS), math.ceil(y + h - _EPS))
    problem = box.problem(height, width)
    if problem:
        raise DatasetError(f"bbox {bbox}: {problem}", where)
    return box


# -- images -----------------------------------------------------------------------------------
def reduce_factor(width: int, height: int, target: tuple[int, int] | None, suffix: str) -> int:
    """The largest JPEG decode reduction (1, 2, 4, 8) that keeps the image at least ``target`` (H, W)."""
    if target is None or suffix.lower() not in (".jpg", ".jpeg"):
        return 1
    factor = 1
    for candidate in (2, 4, 8):
        if width // candidate >= target[1] and height // candidate >= target[0]:
            factor = candidate
    return factor


def decode_checked(data: bytes, where: str, width: int, height: int, reduce: int) -> np.ndarray:
    """Decode an image (reduced ``reduce`` x) and check its size against the declared ``width`` x ``height``."""
    image = decode_image(data, where, reduce)
    if image.shape[:2] != reduced_shape(height, width, reduce):
        got_h, got_w = (image.shape[0] * reduce, image.shape[1] * reduce) if reduce > 1 else image.shape[:2]
        raise DatasetError(f"image is {got_w}x{got_h} but the annotations say {width}x{height}", where)
    return image


def coco_sample(
    entry: CocoImage,
    data: bytes,
    where: str,
    target: tuple[int, int] | None,
    paint: Callable[[CocoImage, int], tuple[np.ndarray, list[Box]]],
) -> Sample:
    """Decode the image of ``entry`` (reduced where ``target`` allows) and build its sample.

    ``paint(entry, reduce)`` returns the uint8 mask on the 1/``reduce`` grid and the boxes at full
    resolution; the boxes are scaled to the decoded resolution here. ``where`` names the image file.
    """
    reduce = reduce_factor(entry.width, entry.height, target, PurePosixPath(entry.file_name).suffix)
    image = decode_checked(data, where, entry.width, entry.height, reduce)
    out_h, out_w = image.shape[:2]
    mask, boxes = paint(entry, reduce)
    if reduce > 1:
        boxes = [scale_box(b, 1 / reduce, 1 / reduce, out_w, out_h) for b in boxes]
    return Sample(entry.stem, image, mask, boxes)


# -- the generic importer ---------------------------------------------------------------------
def _paint_generic(class_of: dict[int, int]) -> Callable[[CocoImage, int], tuple[np.ndarray, list[Box]]]:
    def paint(entry: CocoImage, reduce: int) -> tuple[np.ndarray, list[Box]]:
        mask = np.zeros(reduced_shape(entry.height, entry.width, reduce), dtype=np.uint8)
        boxes = []
        for ann in entry.annotations:
            cls = class_of[int(ann["category_id"])]
            mask[annotation_mask(ann, entry.height, entry.width, entry.where(ann), reduce)] = cls
            boxes.append(annotation_box(ann, cls, entry.height, entry.width, entry.where(ann)))
        return mask, boxes

    return paint


def _iter_folder_samples(index: CocoIndex, images: Path, target: tuple[int, int] | None, paint) -> Iterator[Sample]:
    for entry in index.images:
        path = images / entry.file_name
        yield coco_sample(entry, read_bytes(path), str(path), target, paint)


def import_coco(
    annotations: Path | None = None, images: Path | None = None, size: tuple[int, int] | None = None
) -> SourceData:
    """Any COCO instances file (``annotations``) with its image folder (``images``).

    Classes are the categories in id order (ids 1..N); masks from polygons or RLE, boxes from ``bbox``.
    """
    if annotations is None or images is None:
        raise OptionError("the coco source needs --annotations FILE and --images DIR")
    annotations, images = Path(annotations), Path(images)
    if not images.is_dir():
        raise DatasetError("images folder not found", images)
    index = load_coco(annotations)
    if not index.images:
        raise DatasetError("no images listed in 'images'", annotations)
    cat_ids = sorted(index.categories)
    if len(cat_ids) > IGNORE_INDEX - 1:
        raise DatasetError(f"{len(cat_ids)} categories: at most 254 fit in a uint8 mask", annotations)
    class_of = {cat: i + 1 for i, cat in enumerate(cat_ids)}
    names = [index.categories[c] for c in cat_ids]
    if len(set(names)) != len(names):
        raise DatasetError(f"duplicate category names in {names}", annotations)
    manifest = Manifest(
        name=annotations.stem,
        classes=make_classes(names),
        source={
            "importer": "coco",
            "annotations": str(annotations),
            "images": str(images),
            "category_ids": {index.categories[c]: c for c in cat_ids},
        },
    )
    samples = _iter_folder_samples(index, images, size, _paint_generic(class_of))
    return SourceData(manifest, samples, total=len(index.images))
