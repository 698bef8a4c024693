"""``export``: a dataset folder as COCO instances, Ultralytics YOLO-seg or a Hugging Face ``datasets`` folder.

The three layouts written (``<split>`` is each ``splits/<name>.txt``; a dataset without splits is
exported as one split ``all``, and stems listed in no split as one more split ``unsplit``)::

    coco:      annotations/instances_<split>.json   images/<stem>.<ext>   (one images folder)
    yolo-seg:  data.yaml   images/<split>/<stem>.<ext>   labels/<split>/<stem>.txt
    hf:        dataset_dict.json   <split>/ (datasets.DatasetDict.save_to_disk)

Annotations are the connected components (8-connected) of each defect class in the mask; the
background (0) and ignore (255) pixels are never annotated. Geometry follows COCO: pixel (row i,
column j) covers [j, j+1) x [i, i+1). A component's polygon is traced by ``cv2.findContours`` on the
mask upsampled 2x, so it runs a quarter pixel inside the component's outer pixel edges: a rasteriser
that fills the pixels whose centres lie inside (as ``defectsynth prepare coco`` does) gets exactly the
component back. COCO polygons cannot hold holes, so a component with a hole is written as an
uncompressed RLE (column-major run lengths, starting with background, as pycocotools); YOLO-seg has
only polygons, so each hole is joined to its outline by a zero-width cut (as Ultralytics' own COCO
converter does). Images are copied byte for byte.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from defectsynth.data.files import atomic_write_bytes, partial_dir, read_bytes, replace_dir, write_json
from defectsynth.data.model import IGNORE_INDEX, Manifest
from defectsynth.errors import DatasetError, MissingDependencyError, OptionError, OutputExistsError
from defectsynth.formats.dataset import Dataset
from defectsynth.progress import track

logger = logging.getLogger(__name__)

FORMATS = ("coco", "yolo-seg", "hf")
# What each format writes at the top of its folder; --overwrite replaces only such a folder.
_ENTRIES = {
    "coco": {"annotations", "images"},
    "yolo-seg": {"data.yaml", "images", "labels"},
    "hf": {"dataset_dict.json"},
}
_MARKER = {"coco": "annotations", "yolo-seg": "data.yaml", "hf": "dataset_dict.json"}


# -- geometry ---------------------------------------------------------------------------------
@dataclass
class Component:
    """One connected component of one class.

    cls: class id. bbox: [x, y, width, height] integer pixels (COCO). area: pixels.
    outlines: (N, 2) float64 polygons in COCO coordinates, the outer outline first, then the holes.
    pixels: (height, width) bool, the component inside its bbox.
    """

    cls: int
    bbox: list[int]
    area: int
    outlines: list[np.ndarray]
    pixels: np.ndarray

    @property
    def has_holes(self) -> bool:
        return len(self.outlines) > 1


def outlines(binary: np.ndarray) -> list[np.ndarray]:
    """Outer outline and hole outlines of one 8-connected component ((H, W) bool), as (N, 2) float64.

    Traced on the mask upsampled 2x: a contour point at sub-pixel (u, v) is the sub-pixel's centre,
    ((u + 0.5) / 2, (v + 0.5) / 2) in COCO coordinates, a quarter pixel inside the pixel edges.
    """
    up = np.repeat(np.repeat(binary.astype(np.uint8), 2, axis=0), 2, axis=1)
    contours, hierarchy = cv2.findContours(up, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    xy = [(c.reshape(-1, 2).astype(np.float64) + 0.5) / 2 for c in contours]
    parents = hierarchy[0][:, 3]
    return [p for p, parent in zip(xy, parents) if parent < 0] + [p for p, parent in zip(xy, parents) if parent >= 0]


def mask_components(mask: np.ndarray) -> list[Component]:
    """The components of every defect class of ``mask`` ((H, W) uint8 class ids), by class id then
    top-left corner; 0 (background) and 255 (ignore) are left out."""
    found = []
    for cls in np.unique(mask):
        if cls in (0, IGNORE_INDEX):
            continue
        count, labels, stats, _ = cv2.connectedComponentsWithStats((mask == cls).astype(np.uint8), connectivity=8)
        for k in range(1, count):
            x, y, w, h, area = (int(v) for v in stats[k])
            crop = labels[y : y + h, x : x + w] == k
            found.append(Component(int(cls), [x, y, w, h], area, [p + (x, y) for p in outlines(crop)], crop))
    return sorted(found, key=lambda c: (c.cls, c.bbox[1], c.bbox[0]))


def rle_encode(binary: np.ndarray) -> dict[str, Any]:
    """Uncompressed COCO RLE of an (H, W) bool mask: ``{"size": [H, W], "counts": [...]}``, run
    lengths in column-major order, the first run counting background pixels (0 when the first is set)."""
    flat = np.asarray(binary, dtype=bool).T.ravel()
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    counts = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
    if flat.size and flat[0]:
        counts = [0, *counts]
    return {"size": [int(binary.shape[0]), int(binary.shape[1])], "counts": counts}


def bridged(outline: list[np.ndarray]) -> np.ndarray:
    """One polygon for an outer outline and its holes: each hole joined at its point nearest to the
    polygon by a zero-width cut (in, around the hole, back out), so even-odd and non-zero fills
    both leave the hole empty. (N, 2) float64."""
    poly = outline[0]
    for hole in outline[1:]:
        dist = ((poly[:, None, :] - hole[None, :, :]) ** 2).sum(-1)
        i, j = np.unravel_index(int(dist.argmin()), dist.shape)
        poly = np.concatenate([poly[: i + 1], hole[j:], hole[: j + 1], poly[i:]])
    return poly


# -- the common walk --------------------------------------------------------------------------
@dataclass
class ExportResult:
    """What :func:`export` wrote: the folder, the format, images and annotations per split."""

    out: Path
    to: str
    images: dict[str, int] = field(default_factory=dict)
    annotations: dict[str, int] = field(default_factory=dict)


def export_splits(ds: Dataset) -> dict[str, list[str]]:
    """Split name -> stems: the dataset's splits, ``all`` when it has none, plus ``unsplit`` for
    stems listed in no split (when there are such stems)."""
    splits = {name: ds.split(name) for name in ds.split_names}
    if not splits:
        return {"all": list(ds.stems)}
    listed = {s for stems in splits.values() for s in stems}
    rest = [s for s in ds.stems if s not in listed]
    if rest:
        logger.warning("%d stems are in no split: exported as split 'unsplit'", len(rest))
        splits.setdefault("unsplit", [])
        splits["unsplit"] += rest
    return splits


def defect_classes(manifest: Manifest) -> list[int]:
    """The class ids that are exported as categories: every class but the background, by id."""
    return [c.id for c in manifest.classes if c.id != 0]


@dataclass
class _Item:
    stem: str
    image_path: Path
    height: int
    width: int
    components: list[Component]


def _items(ds: Dataset, stems: list[str], description: str, progress: bool) -> Iterator[_Item]:
    for stem in track(stems, total=len(stems), description=description, enabled=progress):
        sample = ds.read(stem)  # validated: a bad mask or box stops the export before anything is moved into place
        height, width = sample.size
        yield _Item(stem, ds.image_path(stem), height, width, mask_components(sample.mask))


def check_export_out(out: Path, to: str, overwrite: bool) -> None:
    """Refuse an existing, non-empty ``out`` unless ``overwrite`` and it is an export of format ``to``
    holding nothing but what that export writes (user files are never deleted)."""
    if not out.exists():
        return
    if not out.is_dir():
        raise OutputExistsError("output path exists and is not a folder", out)
    entries = [p for p in out.iterdir() if not p.name.startswith(".")]
    if not entries:
        return
    if not overwrite:
        raise OutputExistsError("output folder exists: choose another --out or pass --overwrite", out)
    ours = _ENTRIES[to]
    foreign = sorted(
        p.name for p in entries if p.name not in ours and not (to == "hf" and (p / "dataset_info.json").is_file())
    )
    if not (out / _MARKER[to]).exists() or foreign:
        raise OutputExistsError(
            f"--overwrite only replaces a {to} export folder, and this one holds "
            f"{', '.join(foreign[:3]) or 'no ' + _MARKER[to]}",
            out,
        )


def export(
    dataset: str | Path, out: str | Path, *, to: str, overwrite: bool = False, progress: bool = False
) -> ExportResult:
    """Write the dataset folder ``dataset`` to ``out`` in format ``to`` (coco, yolo-seg or hf).

    The folder is built under a hidden name beside ``out`` and renamed into place at the end, so a
    failed export leaves nothing at ``out`` (and an existing export there intact). Needs masks.
    """
    if to not in FORMATS:
        raise OptionError(f"--to: unknown format {to!r}; choose one of: {', '.join(FORMATS)}")
    if to == "hf":
        _require_datasets()
    ds = Dataset(dataset)
    if not ds.has_masks:
        raise DatasetError(
            "has no masks/ folder: export writes segmentation annotations, which come from the masks", ds.root
        )
    out = Path(out)
    check_export_out(out, to, overwrite)
    tmp = partial_dir(out)
    try:
        result = _WRITERS[to](ds, tmp, out, progress)
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    result.out = out
    logger.info("exported %s to %s (%s)", ds.root, out, to)
    return result


def _copy_image(item: _Item, folder: Path) -> str:
    """Copy the image file into ``folder`` unchanged; returns its file name."""
    name = f"{item.stem}{item.image_path.suffix.lower()}"
    atomic_write_bytes(folder / name, read_bytes(item.image_path), durable=False)
    return name


# -- COCO -------------------------------------------------------------------------------------
def coco_segmentation(comp: Component, height: int, width: int) -> list | dict:
    """Polygons ``[[x0, y0, x1, y1, ...]]`` for a component without holes, else its uncompressed RLE."""
    if not comp.has_holes:
        return [[round(float(v), 2) for v in comp.outlines[0].ravel()]]
    x, y, w, h = comp.bbox
    full = np.zeros((height, width), bool)
    full[y : y + h, x : x + w] = comp.pixels
    return rle_encode(full)


def _write_coco(ds: Dataset, tmp: Path, out: Path, progress: bool) -> ExportResult:
    manifest = ds.manifest
    categories = [{"id": c.id, "name": c.name, "supercategory": "defect"} for c in manifest.classes if c.id != 0]
    result = ExportResult(tmp, "coco")
    image_ids: dict[str, int] = {}
    for split, stems in export_splits(ds).items():
        images, annotations = [], []
        for item in _items(ds, stems, f"coco {split}", progress):
            if item.stem not in image_ids:
                image_ids[item.stem] = len(image_ids) + 1
                file_name = _copy_image(item, tmp / "images")
            else:
                file_name = f"{item.stem}{item.image_path.suffix.lower()}"
            image_id = image_ids[item.stem]
            images.append(
                {
                    "id": image_id,
                    "file_name": file_name,
                    "width": item.width,
                    "height": item.height,
                    "synthetic": manifest.synthetic,
                }
            )
            for comp in item.components:
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": image_id,
                        "category_id": comp.cls,
                        "segmentation": coco_segmentation(comp, item.height, item.width),
                        "bbox": comp.bbox,
                        "area": comp.area,
                        "iscrowd": 0,
                    }
                )
        info = {
            "description": manifest.name,
            "version": "1.0",
            "synthetic": manifest.synthetic,
            "source": manifest.source,
        }
        write_json(
            tmp / "annotations" / f"instances_{split}.json",
            {"info": info, "images": images, "annotations": annotations, "categories": categories},
            durable=False,
        )
        result.images[split], result.annotations[split] = len(images), len(annotations)
    return result


# -- YOLO-seg ---------------------------------------------------------------------------------
def yolo_lines(components: list[Component], class_index: dict[int, int], height: int, width: int) -> str:
    """Ultralytics segment labels: one line per component, ``index x1 y1 x2 y2 ...`` normalised to [0, 1]."""
    lines = []
    for comp in components:
        xy = bridged(comp.outlines) / np.array([width, height], dtype=np.float64)
        coords = " ".join(f"{v:.6f}" for v in np.clip(xy, 0.0, 1.0).ravel())
        lines.append(f"{class_index[comp.cls]} {coords}\n")
    return "".join(lines)


def _yaml_string(text: str) -> str:
    """A YAML double-quoted scalar (JSON strings are valid YAML)."""
    return json.dumps(text, ensure_ascii=False)


def data_yaml(root: Path, splits: list[str], names: list[str]) -> str:
    """Ultralytics' data.yaml: ``path`` (absolute), ``train``/``val``/``test`` image folders, ``names``."""
    lines = [
        f"# Ultralytics YOLO-seg dataset written by defectsynth export\npath: {_yaml_string(str(root.resolve()))}\n"
    ]
    lines += [f"{s}: images/{s}\n" for s in ("train", "val", "test") if s in splits]
    others = [s for s in splits if s not in ("train", "val", "test")]
    if others:
        lines.append(f"# other splits (images/<split>): {', '.join(others)}\n")
    lines.append("names:\n" + "".join(f"  {i}: {_yaml_string(n)}\n" for i, n in enumerate(names)))
    return "".join(lines)


def _write_yolo(ds: Dataset, tmp: Path, out: Path, progress: bool) -> ExportResult:
    classes = defect_classes(ds.manifest)
    class_index = {cls: i for i, cls in enumerate(classes)}
    result = ExportResult(tmp, "yolo-seg")
    splits = export_splits(ds)
    for split, stems in splits.items():
        (tmp / "labels" / split).mkdir(parents=True, exist_ok=True)
        count = 0
        for item in _items(ds, stems, f"yolo-seg {split}", progress):
            _copy_image(item, tmp / "images" / split)
            text = yolo_lines(item.components, class_index, item.height, item.width)
            atomic_write_bytes(tmp / "labels" / split / f"{item.stem}.txt", text.encode("utf-8"), durable=False)
            count += len(item.components)
        result.images[split], result.annotations[split] = len(stems), count
    names = [ds.manifest.class_names[c] for c in classes]
    text = data_yaml(out, list(splits), names)  # where Ultralytics will look, once renamed into place
    atomic_write_bytes(tmp / "data.yaml", text.encode("utf-8"), durable=False)
    return result


# -- Hugging Face datasets --------------------------------------------------------------------
def _require_datasets():
    try:
        import datasets
    except ImportError:
        raise MissingDependencyError("--to hf needs the `datasets` package: pip install 'defectsynth[hf]'") from None
    return datasets


def hf_features():
    """The columns: stem, image (Image), mask (Image, uint8 class ids), boxes ([{class, box}]), synthetic."""
    datasets = _require_datasets()
    box = {"class": datasets.Value("int64"), "box": datasets.Sequence(datasets.Value("int64"), length=4)}
    return datasets.Features(
        {
            "stem": datasets.Value("string"),
            "image": datasets.Image(),
            "mask": datasets.Image(),
            "boxes": [box],
            "synthetic": datasets.Value("bool"),
        }
    )


def _hf_rows(ds: Dataset, stems: list[str], description: str, progress: bool) -> dict[str, list]:
    columns: dict[str, list] = {"stem": [], "image": [], "mask": [], "boxes": [], "synthetic": []}
    for item in _items(ds, stems, description, progress):
        columns["stem"].append(item.stem)
        columns["image"].append({"bytes": read_bytes(item.image_path), "path": item.image_path.name})
        columns["mask"].append({"bytes": read_bytes(ds.mask_path(item.stem)), "path": f"{item.stem}.png"})
        columns["boxes"].append([b.to_json() for b in ds.read_boxes(item.stem)])
        columns["synthetic"].append(ds.manifest.synthetic)
    return columns


def _write_hf(ds: Dataset, tmp: Path, out: Path, progress: bool) -> ExportResult:
    datasets = _require_datasets()
    manifest = ds.manifest
    features = hf_features()
    description = json.dumps(
        {
            "name": manifest.name,
            "classes": [c.to_json() for c in manifest.classes],
            "synthetic": manifest.synthetic,
            "source": manifest.source,
        }
    )
    result = ExportResult(tmp, "hf")
    parts = {}
    for split, stems in export_splits(ds).items():
        info = datasets.DatasetInfo(description=description, features=features)
        parts[split] = datasets.Dataset.from_dict(
            _hf_rows(ds, stems, f"hf {split}", progress), features=features, info=info
        )
        result.images[split] = len(stems)
        result.annotations[split] = sum(len(b) for b in parts[split]["boxes"])
    datasets.DatasetDict(parts).save_to_disk(str(tmp))
    return result


_WRITERS = {"coco": _write_coco, "yolo-seg": _write_yolo, "hf": _write_hf}
