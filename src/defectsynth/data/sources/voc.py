"""PASCAL VOC 2012 segmentation, as used by Che et al. (paper 003).

Input (``--source VOCdevkit/VOC2012``)::

    JPEGImages/<id>.jpg
    SegmentationClass/<id>.png          palette PNG: index = class id (0 background, 1..20), 255 = ignore
    ImageSets/Segmentation/train.txt    the official splits (val.txt too; trainval.txt is not used)
    Annotations/<id>.xml                optional: object boxes (<name>, <bndbox> xmin ymin xmax ymax)

Only images listed in the segmentation split files are imported (the others have no masks); the
splits are kept as they are. Masks keep 255 as ignore. Boxes come from the XML objects (VOC pixel
corners are 1-based and inclusive, so ``xmin..xmax`` becomes the half-open ``[xmin - 1, xmax)``);
an image without XML gets boxes from its mask, computed after resizing.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from defectsynth.data.files import find_image, read_bytes, read_image
from defectsynth.data.model import IGNORE_INDEX, Box, Manifest, Sample, check_stem, make_classes
from defectsynth.data.sources import SourceData
from defectsynth.errors import DatasetError, OptionError

VOC_CLASSES = (
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)
SPLITS = ("train", "val")


def voc_color(class_id: int) -> tuple[int, int, int]:
    """The VOC palette colour of ``class_id`` (bit-interleaved colour map of the devkit)."""
    r = g = b = 0
    c = class_id
    for j in range(8):
        r |= ((c >> 0) & 1) << (7 - j)
        g |= ((c >> 1) & 1) << (7 - j)
        b |= ((c >> 2) & 1) << (7 - j)
        c >>= 3
    return r, g, b


def read_palette_mask(path: Path) -> np.ndarray:
    """A palette ('P') or gray ('L') PNG as (H, W) uint8 indices; RGB masks are refused."""
    from io import BytesIO

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(BytesIO(read_bytes(path))) as img:
            if img.mode not in ("P", "L"):
                raise DatasetError(f"mask is a {img.mode} image: expected a palette PNG of class indices", path)
            return np.array(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError):
        raise DatasetError("unreadable or truncated mask", path) from None


def parse_voc_xml(path: Path, height: int, width: int) -> list[Box]:
    """Object boxes of a VOC annotation file as half-open pixel boxes; checked against the image."""
    try:
        root = ET.fromstring(read_bytes(path))
    except ET.ParseError as err:
        raise DatasetError(f"malformed XML ({err})", path) from None
    ids = {name: i + 1 for i, name in enumerate(VOC_CLASSES)}
    boxes = []
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip()
        if name not in ids:
            raise DatasetError(f"unknown VOC class {name!r}", path)
        try:
            x0, y0, x1, y1 = (round(float(obj.findtext(f"bndbox/{k}") or "")) for k in ("xmin", "ymin", "xmax", "ymax"))
        except ValueError:
            raise DatasetError(f"object {name!r}: bndbox needs numeric xmin, ymin, xmax, ymax", path) from None
        box = Box(ids[name], x0 - 1, y0 - 1, x1, y1)
        problem = box.problem(height, width)
        if problem:
            raise DatasetError(problem, path)
        boxes.append(box)
    return boxes


def _read_split(path: Path) -> list[str]:
    if not path.is_file():
        raise DatasetError("split list not found (is this VOCdevkit/VOC2012?)", path)
    text = read_bytes(path).decode("utf-8", errors="replace")
    return [check_stem(line.strip(), path) for line in text.splitlines() if line.strip()]


def import_voc(source_dir: Path | None = None) -> SourceData:
    """Import the segmentation part of VOC 2012 at ``source_dir`` (the VOC2012 folder)."""
    if source_dir is None:
        raise OptionError("the voc source needs --source VOCdevkit/VOC2012")
    root = Path(source_dir)
    if not root.is_dir():
        raise DatasetError("source folder not found", root)
    splits = {name: _read_split(root / "ImageSets" / "Segmentation" / f"{name}.txt") for name in SPLITS}
    stems = sorted({s for members in splits.values() for s in members})
    if not stems:
        raise DatasetError("the segmentation split lists are empty", root / "ImageSets" / "Segmentation")
    without_xml = {s for s in stems if not (root / "Annotations" / f"{s}.xml").is_file()}
    manifest = Manifest(
        name="voc2012",
        classes=make_classes(list(VOC_CLASSES), {n: voc_color(i + 1) for i, n in enumerate(VOC_CLASSES)}),
        source={
            "importer": "voc",
            "source_dir": str(root),
            "splits": list(SPLITS),
            "boxes_from_masks": len(without_xml),
        },
    )
    return SourceData(
        manifest, _samples(root, stems, without_xml), total=len(stems), fixed_splits=splits, boxes_from_mask=without_xml
    )


def _samples(root: Path, stems: list[str], without_xml: set[str]) -> Iterator[Sample]:
    for stem in stems:
        image_path = find_image(root / "JPEGImages", stem) or root / "JPEGImages" / f"{stem}.jpg"
        image = read_image(image_path)
        h, w = image.shape[:2]
        mask_path = root / "SegmentationClass" / f"{stem}.png"
        mask = read_palette_mask(mask_path)
        if mask.shape != (h, w):
            raise DatasetError(f"mask is {mask.shape[1]}x{mask.shape[0]} but the image is {w}x{h}", mask_path)
        stray = sorted(set(np.unique(mask).tolist()) - set(range(len(VOC_CLASSES) + 1)) - {IGNORE_INDEX})
        if stray:
            raise DatasetError(f"mask holds class ids {stray}, outside VOC's 0..20 and 255", mask_path)
        boxes = [] if stem in without_xml else parse_voc_xml(root / "Annotations" / f"{stem}.xml", h, w)
        yield Sample(stem, image, mask, boxes)
