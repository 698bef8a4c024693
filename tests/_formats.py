"""Builders of small raw datasets in the real public formats, for the importer tests.

Every builder writes into a given folder and returns what the tests need to check exact results.
Rectangles are given as half-open pixel boxes (x0, y0, x1, y1).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

LEMON_CATEGORIES = [
    "image_quality",
    "illness",
    "gangrene",
    "mould",
    "blemish",
    "dark_style_remains",
    "artifact",
    "condition",
    "pedicel",
]


def rect_polygon(x0, y0, x1, y1):
    """A COCO polygon whose filled pixels are exactly mask[y0:y1, x0:x1]."""
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def rle_encode(mask: np.ndarray) -> list[int]:
    """Uncompressed COCO RLE counts (column-major, starting with a run of zeros)."""
    flat = mask.T.ravel().astype(np.uint8)
    counts, current, run = [], 0, 0
    for v in flat:
        if v != current:
            counts.append(run)
            current, run = v, 0
        run += 1
    counts.append(run)
    return counts


def rle_compress(counts: list[int]) -> str:
    """pycocotools' compressed string for ``counts`` (the inverse of its decoder)."""
    out = []
    for i, c in enumerate(counts):
        x = c - counts[i - 2] if i > 2 else c
        more = True
        while more:
            ch = x & 0x1F
            x >>= 5
            more = not ((x == 0 and not ch & 0x10) or (x == -1 and ch & 0x10))
            if more:
                ch |= 0x20
            out.append(chr(ch + 48))
    return "".join(out)


def write_jpeg(path: Path, h: int, w: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    image = cv2.resize(rng.integers(0, 255, (4, 4, 3), dtype=np.uint8), (w, h), interpolation=cv2.INTER_LINEAR)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), image)


def coco_file(images: list[dict], annotations: list[dict], categories: list[str], start_id: int = 1) -> dict:
    return {
        "licenses": [],
        "info": {},
        "categories": [{"id": i + start_id, "name": n, "supercategory": ""} for i, n in enumerate(categories)],
        "images": images,
        "annotations": [
            {"id": k + 1, "iscrowd": 0, "area": 0, "attributes": {}, **a} for k, a in enumerate(annotations)
        ],
    }


def ann(image_id: int, category: str, rect=None, segmentation=None, categories=LEMON_CATEGORIES):
    """An annotation of ``category`` with a rectangle polygon (and its bbox) or a given segmentation."""
    cid = categories.index(category) + 1
    if rect is not None:
        x0, y0, x1, y1 = rect
        return {
            "image_id": image_id,
            "category_id": cid,
            "segmentation": [rect_polygon(*rect)],
            "bbox": [x0, y0, x1 - x0, y1 - y0],
        }
    return {"image_id": image_id, "category_id": cid, **segmentation}


# name -> list of (category, rect)
LEMON_LAYOUT = {
    "0001_A": [("blemish", (10, 10, 30, 20))],
    "0001_B": [("blemish", (4, 40, 20, 60)), ("pedicel", (30, 0, 40, 8))],
    "0002_A": [("illness", (10, 10, 40, 40)), ("mould", (30, 30, 50, 50))],
    "0003_A": [("mould", (0, 0, 64, 16))],
    "0004_A": [("blemish", (8, 8, 24, 24)), ("gangrene", (40, 40, 60, 60))],
    "0005_A": [],
    "0006_A": [("blemish", (16, 16, 32, 48)), ("blemish", (24, 40, 40, 56))],
}
RLE_STEM = "0007_A"
RLE_RECT = (5, 6, 21, 30)


def write_lemons(root: Path, size: int = 64) -> Path:
    """A CVAT COCO export with the lemon schema: annotations/instances_default.json + images/*.jpg."""
    images, anns = [], []
    for i, (stem, objects) in enumerate([*LEMON_LAYOUT.items(), (RLE_STEM, [])], 1):
        images.append({"id": i, "file_name": f"{stem}.jpg", "width": size, "height": size})
        write_jpeg(root / "images" / f"{stem}.jpg", size, size, seed=i)
        anns += [ann(i, cat, rect) for cat, rect in objects]
    mask = np.zeros((size, size), dtype=bool)
    x0, y0, x1, y1 = RLE_RECT
    mask[y0:y1, x0:x1] = True
    counts = rle_encode(mask)
    bbox = [x0, y0, x1 - x0, y1 - y0]
    anns.append(
        ann(
            len(images),
            "illness",
            segmentation={"segmentation": {"size": [size, size], "counts": rle_compress(counts)}, "bbox": bbox},
        )
    )
    anns.append(
        ann(
            len(images),
            "illness",
            segmentation={"segmentation": {"size": [size, size], "counts": counts}, "bbox": bbox, "iscrowd": 1},
        )
    )
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / "instances_default.json").write_text(json.dumps(coco_file(images, anns, LEMON_CATEGORIES)))
    return root


def zip_folder(folder: Path, zip_path: Path, top: str = "lemons") -> Path:
    with zipfile.ZipFile(zip_path, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, f"{top}/{path.relative_to(folder)}")
    return zip_path


# -- wood ----------------------------------------------------------------------------------------
WOOD_SPEC = """Semantic map specification
Colours of the classes in the semantic maps (RGB).

name=Live_knot
R=0
G=255
B=0

name=Death_know
R=255
G=0
B=0

name=Knot_missing
R=255
G=100
B=0

name=knot_with_crack
R=255
G=175
B=0

name=Crack
R=255
G=0
B=100

name=Quartzity
R=100
G=0
B=100

name=resin
R=255
G=0
B=255

name=Marrow
R=0
G=0
B=255

name=Blue_stain
R=16
G=255
B=255

name=overgrown
R=0
G=64
B=0
"""
WOOD_COLORS = {
    "Live_knot": (0, 255, 0),
    "Death_know": (255, 0, 0),
    "Knot_missing": (255, 100, 0),
    "knot_with_crack": (255, 175, 0),
    "Crack": (255, 0, 100),
    "Quartzity": (100, 0, 100),
    "resin": (255, 0, 255),
    "Marrow": (0, 0, 255),
    "Blue_stain": (16, 255, 255),
    "overgrown": (0, 64, 0),
}
WOOD_H, WOOD_W = 32, 80
# stem -> list of (name, rect in pixels); boxes written normalised, some with decimal commas
WOOD_LAYOUT = {
    "100000000": [("Live_knot", (8, 4, 24, 20)), ("Crack", (40, 10, 72, 14))],
    "100000001": [("Death_know", (0, 0, 16, 16)), ("Blue_stain", (20, 0, 60, 32))],
    "100000002": [("Quartzity", (10, 10, 30, 30)), ("resin", (50, 2, 60, 12)), ("Marrow", (64, 16, 80, 32))],
    "100000003": [("overgrown", (4, 4, 40, 28))],
    "100000004": [("Knot_missing", (5, 5, 15, 15)), ("knot_with_crack", (30, 5, 45, 20))],
}
WOOD_CLEAN = "100000005"  # no map, no box file: defect-free


def write_wood(root: Path, comma: bool = True) -> Path:
    """A Kodytek-style archive: Images1/, Images2/, Semantic Maps/, Bouding Boxes/, specification."""
    (root / "Semantic Maps").mkdir(parents=True, exist_ok=True)
    (root / "Bouding Boxes").mkdir(parents=True, exist_ok=True)
    (root / "Semantic Map Specification.txt").write_text(WOOD_SPEC)
    stems = [*WOOD_LAYOUT, WOOD_CLEAN]
    for i, stem in enumerate(stems):
        folder = root / f"Images{1 + i % 2}"
        folder.mkdir(exist_ok=True)
        rng = np.random.default_rng(i)
        cv2.imwrite(str(folder / f"{stem}.bmp"), rng.integers(0, 255, (WOOD_H, WOOD_W, 3), dtype=np.uint8))
        if stem == WOOD_CLEAN:
            continue
        segm = np.zeros((WOOD_H, WOOD_W, 3), dtype=np.uint8)
        lines = []
        for k, (name, (x0, y0, x1, y1)) in enumerate(WOOD_LAYOUT[stem]):
            segm[y0:y1, x0:x1] = WOOD_COLORS[name]
            values = [f"{v:.6f}" for v in (x0 / WOOD_W, y0 / WOOD_H, x1 / WOOD_W, y1 / WOOD_H)]
            if comma and k % 2 == 0:
                values = [v.replace(".", ",") for v in values]
            lines.append("\t".join([name, *values]))
        cv2.imwrite(str(root / "Semantic Maps" / f"{stem}_segm.bmp"), cv2.cvtColor(segm, cv2.COLOR_RGB2BGR))
        (root / "Bouding Boxes" / f"{stem}_anno.txt").write_text("\n".join(lines) + "\n")
    return root


# -- voc -----------------------------------------------------------------------------------------
def voc_palette() -> list[int]:
    from defectsynth.data.sources.voc import voc_color

    pal = []
    for i in range(256):
        pal += list(voc_color(i))
    return pal


VOC_LAYOUT = {  # stem -> list of (class id, rect); boundary band of 255 around each object
    "2007_000032": [(1, (4, 4, 20, 16))],
    "2007_000033": [(15, (10, 2, 30, 30)), (12, (0, 20, 8, 32))],
    "2008_000001": [(7, (2, 2, 12, 12))],
}
VOC_TRAIN, VOC_VAL = ["2007_000032", "2008_000001"], ["2007_000033"]
VOC_NO_XML = "2008_000001"


def write_voc(root: Path) -> Path:
    """VOCdevkit/VOC2012 with palette PNGs (255 borders), split lists and XML annotations."""
    from defectsynth.data.sources.voc import VOC_CLASSES

    for sub in ("JPEGImages", "SegmentationClass", "Annotations", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i, (stem, objects) in enumerate(VOC_LAYOUT.items()):
        write_jpeg(root / "JPEGImages" / f"{stem}.jpg", 32, 40, seed=i)
        mask = np.zeros((32, 40), dtype=np.uint8)
        xml = [
            f"<annotation><filename>{stem}.jpg</filename><size><width>40</width><height>32</height><depth>3</depth></size>"
        ]
        for cls, (x0, y0, x1, y1) in objects:
            mask[max(0, y0 - 1) : y1 + 1, max(0, x0 - 1) : x1 + 1] = 255
            mask[y0:y1, x0:x1] = cls
            xml.append(
                f"<object><name>{VOC_CLASSES[cls - 1]}</name><difficult>0</difficult><bndbox><xmin>{x0 + 1}</xmin>"
                f"<ymin>{y0 + 1}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
            )
        img = Image.fromarray(mask, mode="P")
        img.putpalette(voc_palette())
        img.save(root / "SegmentationClass" / f"{stem}.png")
        if stem != VOC_NO_XML:
            (root / "Annotations" / f"{stem}.xml").write_text("".join(xml) + "</annotation>")
    (root / "ImageSets/Segmentation/train.txt").write_text("\n".join(VOC_TRAIN) + "\n")
    (root / "ImageSets/Segmentation/val.txt").write_text("\n".join(VOC_VAL) + "\n")
    (root / "ImageSets/Segmentation/trainval.txt").write_text("\n".join(VOC_TRAIN + VOC_VAL) + "\n")
    return root


# -- masks ---------------------------------------------------------------------------------------
def write_mask_file(path: Path, mask: np.ndarray) -> None:
    """A mask PNG: (H, W) values as they are, (H, W, 3) as RGB colours."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(mask, cv2.COLOR_RGB2BGR) if mask.ndim == 3 else mask)


def write_pair(
    folder: Path, stem: str, mask: np.ndarray, image_ext: str = ".jpg", mask_name: str | None = None, seed: int = 0
) -> None:
    """An image ``stem+image_ext`` and its mask (``mask_name`` or ``stem.png``) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    h, w = mask.shape[:2]
    write_jpeg(folder / f"{stem}{image_ext}", h, w, seed) if image_ext in (".jpg", ".jpeg") else cv2.imwrite(
        str(folder / f"{stem}{image_ext}"), np.full((h, w, 3), 100 + seed, np.uint8)
    )
    array = cv2.cvtColor(mask, cv2.COLOR_RGB2BGR) if mask.ndim == 3 else mask
    cv2.imwrite(str(folder / (mask_name or f"{stem}.png")), array)


def rect_mask(h: int, w: int, *rects, value=1) -> np.ndarray:
    mask = np.zeros((h, w), dtype=np.uint8)
    for x0, y0, x1, y1 in rects:
        mask[y0:y1, x0:x1] = value
    return mask
