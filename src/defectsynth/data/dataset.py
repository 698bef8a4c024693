"""Reading and validating a dataset folder.

Layout (the data contract)::

    <dataset>/
      dataset.json          manifest: format, name, classes, source, stats, synthetic
      images/<stem>.png     RGB (jpg accepted)
      masks/<stem>.png      uint8 class ids, 0 = background, 255 = ignore (optional per dataset)
      boxes/<stem>.json     [{"class": 3, "box": [x_min, y_min, x_max, y_max]}, ...]
      splits/<name>.txt     one stem per line
      conditions/<stem>.npz optional cache written by encode-boxes

Every problem is raised as a :class:`~defectsynth.errors.DatasetError` naming the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from defectsynth.data.files import IMAGE_SUFFIXES, check_format, find_image, finite_int, read_image, read_json, read_mask, read_text
from defectsynth.data.model import FORMAT_VERSION, IGNORE_INDEX, Box, ClassInfo, Manifest, Sample, check_stem, index_by_stem, stray_class_ids
from defectsynth.errors import DatasetError


def parse_manifest(data: Any, path: Path) -> Manifest:
    """Validate the JSON of ``dataset.json`` and build a :class:`Manifest`."""
    check_format(data, path, FORMAT_VERSION)
    raw_classes = data.get("classes")
    if not isinstance(raw_classes, list) or not raw_classes:
        raise DatasetError("'classes' must be a non-empty list", path)
    classes = [_parse_class(c, path) for c in raw_classes]
    ids = [c.id for c in classes]
    if len(set(ids)) != len(ids):
        raise DatasetError(f"duplicate class ids in 'classes': {ids}", path)
    if 0 not in ids:
        raise DatasetError("'classes' must contain id 0 (background)", path)
    name = data.get("name", path.parent.name)
    return Manifest(
        name=str(name),
        classes=sorted(classes, key=lambda c: c.id),
        source=data.get("source") or {},
        synthetic=bool(data.get("synthetic", False)),
        stats=data.get("stats") or {},
        format=data["format"],
    )


def _parse_class(raw: Any, path: Path) -> ClassInfo:
    if not isinstance(raw, dict) or "id" not in raw or "name" not in raw:
        raise DatasetError(f"each class needs 'id' and 'name', got {raw!r}", path)
    cid = finite_int(raw["id"], "class id", path)
    if not 0 <= cid < IGNORE_INDEX:
        raise DatasetError(f"class id {cid} must lie in 0..254 (255 is 'ignore')", path)
    color = raw.get("color", [0, 0, 0])
    if not isinstance(color, list) or len(color) != 3 or not all(isinstance(v, int) and 0 <= v <= 255 for v in color):
        raise DatasetError(f"class {cid}: 'color' must be [r, g, b] with 0..255, got {color!r}", path)
    return ClassInfo(cid, str(raw["name"]), tuple(color))  # type: ignore[arg-type]


def parse_boxes(data: Any, path: Path, class_ids: set[int]) -> list[Box]:
    """Validate the JSON of a ``boxes/<stem>.json`` file (geometry is checked against the image later)."""
    if not isinstance(data, list):
        raise DatasetError("boxes file must hold a JSON list of {\"class\": id, \"box\": [x0, y0, x1, y1]}", path)
    boxes = []
    for k, item in enumerate(data):
        if not isinstance(item, dict) or "class" not in item or "box" not in item:
            raise DatasetError(f"entry {k} must be {{\"class\": id, \"box\": [x0, y0, x1, y1]}}, got {item!r}", path)
        cls = finite_int(item["class"], f"entry {k} class", path)
        if cls not in class_ids or cls == 0:
            raise DatasetError(f"entry {k}: class {cls} is not a defect class of this dataset", path)
        coords = item["box"]
        if not isinstance(coords, list) or len(coords) != 4:
            raise DatasetError(f"entry {k}: 'box' must be [x_min, y_min, x_max, y_max], got {coords!r}", path)
        x0, y0, x1, y1 = (finite_int(v, f"entry {k} box coordinate", path) for v in coords)
        boxes.append(Box(cls, x0, y0, x1, y1))
    return boxes


class Dataset:
    """A dataset folder, opened for reading.

    >>> ds = Dataset("data/toy")            # doctest: +SKIP
    >>> sample = ds.read(ds.stems[0])        # Sample(stem, image (H, W, 3) uint8, mask, boxes)
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError("dataset folder not found", self.root)
        manifest_path = self.root / "dataset.json"
        if not manifest_path.is_file():
            raise DatasetError("not a dataset folder: dataset.json is missing (create one with `defectsynth prepare`)", self.root)
        self.manifest = parse_manifest(read_json(manifest_path), manifest_path)
        self.stems = self._list_stems()

    # -- layout -----------------------------------------------------------------------------
    @property
    def images_dir(self) -> Path:
        return self.root / "images"

    @property
    def has_masks(self) -> bool:
        return (self.root / "masks").is_dir()

    def _list_stems(self) -> list[str]:
        if not self.images_dir.is_dir():
            raise DatasetError("images/ folder is missing", self.root)
        images = [p for p in sorted(self.images_dir.iterdir()) if not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES]
        return sorted(index_by_stem(images))

    def image_path(self, stem: str) -> Path:
        path = find_image(self.images_dir, stem)
        if path is None:
            raise DatasetError("image not found", self.images_dir / f"{stem}.png")
        return path

    def mask_path(self, stem: str) -> Path:
        return self.root / "masks" / f"{stem}.png"

    def boxes_path(self, stem: str) -> Path:
        return self.root / "boxes" / f"{stem}.json"

    # -- reading ----------------------------------------------------------------------------
    def split(self, name: str) -> list[str]:
        """Stems listed in ``splits/<name>.txt`` (validated against the images)."""
        path = self.root / "splits" / f"{name}.txt"
        if not path.is_file():
            available = sorted(p.stem for p in (self.root / "splits").glob("*.txt"))
            raise DatasetError(f"split {name!r} not found (available: {', '.join(available) or 'none'})", path)
        known = set(self.stems)
        stems = []
        for line_no, line in enumerate(read_text(path).splitlines(), 1):
            stem = line.strip()
            if not stem:
                continue
            check_stem(stem, f"{path}:{line_no}")
            if stem not in known:
                raise DatasetError(f"line {line_no}: stem {stem!r} has no image", path)
            stems.append(stem)
        return stems

    @property
    def split_names(self) -> list[str]:
        return sorted(p.stem for p in (self.root / "splits").glob("*.txt"))

    def select(self, split: str | None) -> list[str]:
        """The stems of ``split``, or every stem when ``split`` is None."""
        return self.stems if split is None else self.split(split)

    def read_boxes(self, stem: str, size: tuple[int, int] | None = None) -> list[Box]:
        """Boxes of ``stem`` ([] when it has no boxes file); checked against ``size`` = (H, W) if given."""
        path = self.boxes_path(stem)
        if not path.is_file():
            return []
        boxes = parse_boxes(read_json(path), path, self.manifest.class_ids)
        if size is not None:
            for box in boxes:
                problem = box.problem(*size)
                if problem:
                    raise DatasetError(problem, path)
        return boxes

    def read_mask(self, stem: str, size: tuple[int, int] | None = None) -> np.ndarray | None:
        """Mask of ``stem`` as (H, W) uint8, None when the dataset has no masks; validated."""
        if not self.has_masks:
            return None
        path = self.mask_path(stem)
        if not path.is_file():
            raise DatasetError("mask missing for this image", path)
        mask = read_mask(path)
        if size is not None and mask.shape != size:
            raise DatasetError(f"mask is {mask.shape[1]}x{mask.shape[0]} but the image is {size[1]}x{size[0]}", path)
        check_mask_ids(mask, self.manifest.class_ids, path)
        return mask

    def read(self, stem: str) -> Sample:
        """Read and validate one sample."""
        image = read_image(self.image_path(stem))
        size = image.shape[:2]
        return Sample(stem, image, self.read_mask(stem, size), self.read_boxes(stem, size))

    def __iter__(self) -> Iterator[Sample]:
        for stem in self.stems:
            yield self.read(stem)

    def __len__(self) -> int:
        return len(self.stems)

    def validate(self) -> None:
        """Read every sample and split once; raises on the first problem."""
        for _ in self:
            pass
        for name in self.split_names:
            self.split(name)


def parse_dataset_spec(text: str | Path) -> tuple[Path, str | None]:
    """``"DATASET"`` or ``"DATASET:split"`` -> (folder, split name or None): the one reading of the
    ``DATASET[:split]`` options (``--conditions``, ``--onto``). An existing path wins over the split syntax."""
    text = str(text)
    if Path(text).exists() or ":" not in text:
        return Path(text), None
    folder, split = text.rsplit(":", 1)
    return Path(folder), (split or None)


def check_mask_ids(mask: np.ndarray, class_ids: set[int], path: Path | str) -> None:
    """Raise when ``mask`` holds an id that is neither a declared class nor 255 (ignore)."""
    stray = stray_class_ids(mask, class_ids)
    if stray:
        raise DatasetError(f"mask holds class ids {stray} not declared in dataset.json", path)


def check_same_classes(a: Dataset, b: Dataset, option: str | None = None) -> None:
    """Raise unless ``a`` and ``b`` declare the same classes (ids and names): only then can they be combined.

    option: the CLI option that named ``a`` (e.g. "--synthetic"), put first in the message.
    """
    left, right = a.manifest.class_names, b.manifest.class_names
    if left != right:
        where = f"{option}: " if option else ""
        raise DatasetError(f"{where}classes {left} differ from {right} of {b.root}: they cannot be combined", a.root / "dataset.json")
