"""The dataset folder: reading and validating it (:class:`Dataset`), writing it atomically
(:class:`DatasetWriter`) and the ``--overwrite`` rule of this and the other output folders.

Layout (the data contract)::

    <dataset>/
      dataset.json          manifest: format, name, classes, source, stats, synthetic
      images/<stem>.png     RGB (jpg accepted)
      masks/<stem>.png      uint8 class ids, 0 = background, 255 = ignore (optional per dataset)
      boxes/<stem>.json     [{"class": 3, "box": [x_min, y_min, x_max, y_max]}, ...]
      splits/<name>.txt     one stem per line
      conditions/<stem>.npz optional cache written by encode-boxes

Every problem is raised as a :class:`~defectsynth.errors.DatasetError` naming the file.

Writing: :class:`DatasetWriter` builds the whole folder under a hidden temporary name beside the target
and renames it into place only when :meth:`DatasetWriter.commit` is called, so a command that
fails or is killed leaves no partial output folder (a killed run's hidden folder is removed by the
next run of the same command on the same output). An existing output folder is refused unless
``overwrite=True``, and only a folder that is itself a dataset (it has ``dataset.json``) and holds
nothing else, at any depth (:func:`check_replaceable`), is ever replaced: user files are never deleted.
"""

from __future__ import annotations

import fnmatch
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from defectsynth.data.files import (
    IMAGE_SUFFIXES,
    PARTIAL_MARKER,
    check_format,
    find_image,
    finite_int,
    partial_dir,
    read_image,
    read_json,
    read_mask,
    read_text,
    remove_stale_partials,
    replace_dir,
    write_image,
    write_json,
    write_mask,
)
from defectsynth.data.model import (
    FORMAT_VERSION,
    IGNORE_INDEX,
    Box,
    ClassInfo,
    Manifest,
    Sample,
    check_stem,
    index_by_stem,
    stray_class_ids,
)
from defectsynth.errors import DatasetError, OutputExistsError
from defectsynth.locks import current_command


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
        raise DatasetError('boxes file must hold a JSON list of {"class": id, "box": [x0, y0, x1, y1]}', path)
    boxes = []
    for k, item in enumerate(data):
        if not isinstance(item, dict) or "class" not in item or "box" not in item:
            raise DatasetError(f'entry {k} must be {{"class": id, "box": [x0, y0, x1, y1]}}, got {item!r}', path)
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
            raise DatasetError(
                "not a dataset folder: dataset.json is missing (create one with `defectsynth prepare`)", self.root
            )
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
        images = [
            p
            for p in sorted(self.images_dir.iterdir())
            if not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
        ]
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
        raise DatasetError(
            f"{where}classes {left} differ from {right} of {b.root}: they cannot be combined", a.root / "dataset.json"
        )


# Every file defectsynth writes in a dataset folder, as glob patterns of its path inside the folder
# (``*`` never crosses a ``/``): DatasetWriter (prepare, balance, filter), encode-boxes
# (conditions/), sample (.sampling/), filter (scores.json, segmenter/, clip_scores.json) and
# sample --backend sd-adapter (previews/).
DATASET_LAYOUT = (
    "dataset.json",
    "images/*.png",
    "images/*.jpg",
    "masks/*.png",
    "boxes/*.json",
    "splits/*.txt",
    "conditions/*.npz",
    "conditions/preview/*.png",
    ".sampling/*.json",
    "scores.json",
    "segmenter/*",
    "clip_scores.json",
    "previews/*.png",
)
# The hidden names of killed or running writes: ``.<name>.<random>.tmp`` (an atomic write),
# ``.<name>.partial[-x]`` / ``.<name>.old[-x]`` (a folder being replaced), ``.<name>.lock[.json]``.
_HIDDEN = re.compile(r"\.(?P<name>.+?)\.(?:partial(?:-\w+)?|old(?:-\w+)?|lock(?:\.json)?|[^.]+\.tmp)")

_LOCK = re.compile(r"\..+\.lock(?:\.json)?")


def nested(prefix: str, layout: tuple[str, ...]) -> tuple[str, ...]:
    """``layout`` of a folder that lies at ``prefix`` inside another (e.g. ``data/`` of a demo folder)."""
    return tuple(f"{prefix}/{pattern}" for pattern in layout)


def _fits(parts: list[str], pattern: list[str]) -> bool:
    return len(parts) == len(pattern) and all(fnmatch.fnmatchcase(p, w) for p, w in zip(parts, pattern))


def in_layout(relative: Path, layout: tuple[str, ...]) -> bool:
    """Whether the file at ``relative`` (inside a folder) is one that ``layout`` says defectsynth
    writes, reading every hidden leftover name as the name it stands for (``.unet.old/x`` as
    ``unet/x``); a partial folder's marker may lie in any folder of the layout, and a lock file
    beside any file or folder of it."""
    parts = [m["name"] if (m := _HIDDEN.fullmatch(part)) else part for part in relative.parts]
    patterns = [pattern.split("/") for pattern in layout]
    if relative.name == PARTIAL_MARKER:
        parts = parts[:-1]
    if relative.name == PARTIAL_MARKER or _LOCK.fullmatch(relative.name):
        return any(_fits(parts, pattern[: len(parts)]) for pattern in patterns if len(pattern) >= len(parts))
    return any(_fits(parts, pattern) for pattern in patterns)


def check_replaceable(out: Path, layout: tuple[str, ...] = DATASET_LAYOUT, what: str = "folder") -> None:
    """Raise unless every file at any depth of ``out`` is one defectsynth writes there
    (:func:`in_layout`): ``--overwrite`` replaces a whole folder, so it never replaces one that also
    holds user files, however deep."""
    foreign = sorted(
        str(p.relative_to(out))
        for p in out.rglob("*")
        if (p.is_symlink() or not p.is_dir()) and not in_layout(p.relative_to(out), layout)
    )
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise OutputExistsError(
            f"--overwrite replaces the whole {what}, and it also holds {shown}, not written by defectsynth: "
            "move that away first",
            out,
        )


def check_output_dir(out: Path, overwrite: bool) -> None:
    """Refuse an existing ``out`` unless ``overwrite`` and it is a dataset folder (or empty) holding
    nothing but what defectsynth writes there (:func:`check_replaceable`)."""
    if not out.exists():
        return
    if not out.is_dir():
        raise OutputExistsError("output path exists and is not a folder", out)
    if not any(out.iterdir()):
        return
    if not overwrite:
        raise OutputExistsError("output folder exists: choose another --out or pass --overwrite", out)
    if not (out / "dataset.json").is_file():
        raise OutputExistsError("--overwrite only replaces a dataset folder, and this folder has no dataset.json", out)
    check_replaceable(out)


def check_output_file(path: Path, overwrite: bool, what: str, ours: Callable[[Path], bool]) -> None:
    """Refuse an existing output file ``path`` unless ``overwrite`` and ``ours(path)`` says it is a
    ``what`` defectsynth wrote (e.g. a plan): a user's file is never replaced; a folder never is."""
    if not path.exists():
        return
    if path.is_dir():
        raise OutputExistsError(f"is a folder, expected the path of a {what} file", path)
    if not overwrite:
        raise OutputExistsError("file exists: choose another path or pass --overwrite", path)
    if not ours(path):
        raise OutputExistsError(f"--overwrite only replaces a {what}, and this file is not one", path)


class DatasetStats:
    """Counts gathered while writing: images, images/boxes/pixels per class."""

    def __init__(self, num_classes: int):
        self.images = 0
        self.defect_free = 0
        self.images_per_class = np.zeros(num_classes, dtype=np.int64)
        self.boxes_per_class = np.zeros(num_classes, dtype=np.int64)
        self.pixels_per_class = np.zeros(num_classes, dtype=np.int64)

    def add(self, sample: Sample) -> None:
        n = len(self.images_per_class)
        self.images += 1
        present: set[int] = set()
        if sample.mask is not None:
            counts = np.bincount(sample.mask.ravel(), minlength=256)
            self.pixels_per_class += counts[:n]
            present |= {i for i in range(1, n) if counts[i] > 0}
        for box in sample.boxes:
            self.boxes_per_class[box.cls] += 1
            present.add(box.cls)
        for cls in present:
            self.images_per_class[cls] += 1
        if not present:
            self.defect_free += 1

    def to_json(self, manifest: Manifest) -> dict[str, Any]:
        names = manifest.class_names
        per = lambda arr: {names[i]: int(arr[i]) for i in sorted(names)}  # noqa: E731
        return {
            "images": self.images,
            "defect_free_images": self.defect_free,
            "images_per_class": per(self.images_per_class),
            "boxes_per_class": per(self.boxes_per_class),
            "pixels_per_class": per(self.pixels_per_class),
        }


class DatasetWriter:
    """Write samples into a new dataset folder; nothing appears at ``out`` before :meth:`commit`.

    Use as a context manager: leaving the block with an exception removes the temporary folder.
    """

    def __init__(self, out: str | Path, manifest: Manifest, overwrite: bool = False, image_format: str = "png"):
        self.out = Path(out)
        check_output_dir(self.out, overwrite)
        if image_format not in ("png", "jpg"):
            raise DatasetError(f"image format must be png or jpg, got {image_format!r}")
        self.manifest = manifest
        self.image_format = image_format
        command = current_command()  # the command holding out's lock (defectsynth.locks), if any
        if command is not None:
            remove_stale_partials(self.out, command)  # what a killed run of this command left beside out
        self.tmp = partial_dir(self.out, command)
        for sub in ("images", "boxes"):
            (self.tmp / sub).mkdir()
        self.stats = DatasetStats(manifest.num_classes)
        self.stems: set[str] = set()
        self._has_masks: bool | None = None
        self._committed = False

    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self._committed:
            self.abort()

    def add(self, sample: Sample) -> None:
        """Validate ``sample`` against the manifest and write its files."""
        stem = check_stem(sample.stem)
        if stem in self.stems:
            raise DatasetError(f"duplicate stem {stem!r}")
        self._check(sample)
        # Files inside the temporary folder skip their own fsync: replace_dir() syncs once before the
        # folder is renamed into place, which is what makes the result durable.
        write_image(self.tmp / "images" / f"{stem}.{self.image_format}", sample.image, durable=False)
        if sample.mask is not None:
            write_mask(self.tmp / "masks" / f"{stem}.png", sample.mask, durable=False)
        write_json(self.tmp / "boxes" / f"{stem}.json", [b.to_json() for b in sample.boxes], durable=False)
        self.stems.add(stem)
        self.stats.add(sample)

    def _check(self, sample: Sample) -> None:
        image = sample.image
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise DatasetError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}", sample.stem)
        has_mask = sample.mask is not None
        if self._has_masks is None:
            self._has_masks = has_mask
            if has_mask:
                (self.tmp / "masks").mkdir()
        elif self._has_masks != has_mask:
            raise DatasetError("some samples have masks and some do not", sample.stem)
        if sample.mask is not None:
            if sample.mask.shape != image.shape[:2]:
                raise DatasetError(f"mask shape {sample.mask.shape} differs from image {image.shape[:2]}", sample.stem)
            ids = self.manifest.class_ids
            stray = sorted(set(np.unique(sample.mask).tolist()) - ids - {IGNORE_INDEX})
            if stray:
                raise DatasetError(f"mask holds undeclared class ids {stray}", sample.stem)
        for box in sample.boxes:
            problem = box.problem(*image.shape[:2])
            if problem:
                raise DatasetError(problem, sample.stem)
            if box.cls not in self.manifest.class_ids or box.cls == 0:
                raise DatasetError(f"box class {box.cls} is not a defect class", sample.stem)

    def commit(self, splits: dict[str, list[str]] | None = None) -> Path:
        """Write splits and ``dataset.json``, then move the folder into place. Returns ``out``."""
        if not self.stems:
            raise DatasetError("no samples to write")
        if splits:
            (self.tmp / "splits").mkdir()
            for name, stems in splits.items():
                unknown = sorted(set(stems) - self.stems)
                if unknown:
                    raise DatasetError(f"split {name!r} names stems without images: {unknown[:5]}")
                text = "".join(f"{s}\n" for s in stems)
                (self.tmp / "splits" / f"{name}.txt").write_text(text, encoding="utf-8")
        self.manifest.stats = self.stats.to_json(self.manifest)
        write_json(self.tmp / "dataset.json", self.manifest.to_json(), durable=False)
        replace_dir(self.tmp, self.out)
        self._committed = True
        return self.out

    def abort(self) -> None:
        """Remove the temporary folder."""
        shutil.rmtree(self.tmp, ignore_errors=True)
