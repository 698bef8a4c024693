"""The Lemons Quality Control Dataset (Adamiak 2020), as used by Rabensteiner's thesis (paper 001).

Input, as published (a folder, or the zip of it; the zip is read directly, nothing is extracted)::

    <source>/annotations/instances_default.json   COCO export of CVAT (polygons + bbox)
    <source>/images/<fruit id>_....jpg              1056x1056 photographs

(one extra top-level folder, as zips often have, is found too). Categories, by id: 1 image_quality,
2 illness, 3 gangrene, 4 mould, 5 blemish, 6 dark_style_remains, 7 artifact, 8 condition, 9 pedicel.
They are matched by name, so a re-export with other ids works.

Subsets (the thesis' strict rule, section 5.2): with ``binary`` or ``classes``, an image belongs
to the subset when every category annotated on it is one of the chosen ones and at least one is
present. Categories listed in ``ignore`` do not count for the rule and are left out of the masks
(their pixels are background). The thesis counts all nine categories, so nothing is ignored by
default: "Binary Blemish" = the images whose only annotations are blemishes.

- ``binary="blemish"``: one class ``blemish``; ``binary="blemish,illness,mould"``: one class
  ``defect`` (the chosen categories merged).
- ``classes="blemish,illness,mould"``: one class per category, numbered in category-id order
  (illness, mould, blemish), plus ``mix`` for pixels covered by two or more chosen categories.
- neither: all nine categories (minus ``ignore``) and ``mix``, every image kept.

Boxes come from the COCO ``bbox`` of each kept annotation. Splits are grouped by the four-digit
fruit id at the start of the file name, so the views of one lemon never straddle two splits.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import numpy as np

from defectsynth.data.files import read_bytes, read_json
from defectsynth.data.model import Box, Manifest, Sample, make_classes
from defectsynth.data.sources import SourceData
from defectsynth.data.sources.coco import (
    CocoImage,
    CocoIndex,
    annotation_box,
    annotation_mask,
    coco_sample,
    parse_coco,
    reduced_shape,
)
from defectsynth.errors import DatasetError, OptionError

ANNOTATIONS = "annotations/instances_default.json"
LEMON_SIZE = (256, 256)


class LemonsFiles:
    """The export as a folder or a zip: the annotations and the image bytes, by path inside it."""

    def __init__(self, source: Path):
        self.source = source
        self.zip: zipfile.ZipFile | None = None
        self.names: set[str] = set()  # members, when reading a zip
        if source.is_file():
            if not zipfile.is_zipfile(source):
                raise DatasetError("expected the dataset folder or its .zip", source)
            try:
                self.zip = zipfile.ZipFile(source)
            except (zipfile.BadZipFile, OSError) as err:
                raise DatasetError(f"cannot open the zip ({err})", source) from None
            self.names = set(self.zip.namelist())
            names = [n for n in self.names if n == ANNOTATIONS or n.endswith("/" + ANNOTATIONS)]
            self.root = min(names, key=len)[: -len(ANNOTATIONS)] if names else None
        elif source.is_dir():
            found = [p for p in (source / ANNOTATIONS, *source.glob("*/" + ANNOTATIONS)) if p.is_file()]
            self.root = str(found[0].relative_to(source))[: -len(ANNOTATIONS)] if found else None
        else:
            raise DatasetError("source not found", source)
        if self.root is None:
            raise DatasetError(f"no {ANNOTATIONS} found: is this the Lemons dataset (COCO export)?", source)

    def where(self, relative: str) -> str:
        return f"{self.source}/{self.root}{relative}" if self.zip is None else f"{self.source}:{self.root}{relative}"

    def read(self, relative: str) -> bytes:
        if self.zip is None:
            return read_bytes(self.source / f"{self.root}{relative}")
        try:
            return self.zip.read(f"{self.root}{relative}")
        except KeyError:
            raise DatasetError("file not found in the zip", self.where(relative)) from None
        except (zipfile.BadZipFile, OSError) as err:
            raise DatasetError(f"cannot read from the zip ({err})", self.where(relative)) from None

    def exists(self, relative: str) -> bool:
        if self.zip is None:
            return (self.source / f"{self.root}{relative}").is_file()
        return f"{self.root}{relative}" in self.names

    def image_path(self, file_name: str) -> str:
        """``images/<file_name>``, or ``<file_name>`` itself when the export already put ``images/`` in it."""
        inside = str(PurePosixPath("images") / file_name)
        return file_name if not self.exists(inside) and self.exists(file_name) else inside

    def index(self) -> CocoIndex:
        where = self.where(ANNOTATIONS)
        if self.zip is None:
            return parse_coco(read_json(where), where)
        try:
            data = json.loads(self.read(ANNOTATIONS).decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as err:
            raise DatasetError(f"malformed JSON ({err})", where) from None
        return parse_coco(data, where)


def _names(text: str | None, option: str, known: dict[str, int], where: str) -> list[str]:
    """Split a comma list of category names and check them against the file's categories."""
    names = [n.strip() for n in (text or "").split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise OptionError(
            f"{option}: unknown lemon categor{'ies' if len(unknown) > 1 else 'y'} {', '.join(unknown)} "
            f"(categories in {where}: {', '.join(known)})"
        )
    return names


def fruit_id(stem: str) -> str:
    """The group key of a lemon image: its leading four-digit fruit id (else the whole stem)."""
    return stem[:4] if len(stem) >= 4 and stem[:4].isdigit() else stem


def in_subset(entry: CocoImage, chosen: set[int], ignored: set[int], require_one: bool) -> bool:
    """The thesis' rule: every counted category annotated on the image is chosen (and one is present)."""
    counted = {int(a["category_id"]) for a in entry.annotations} - ignored
    return counted <= chosen and (bool(counted) or not require_one)


def _painter(class_of: dict[int, int], mix: int | None):
    def paint(entry: CocoImage, reduce: int) -> tuple[np.ndarray, list[Box]]:
        per_class: dict[int, np.ndarray] = {}
        boxes = []
        for ann in entry.annotations:
            cls = class_of.get(int(ann["category_id"]))
            if cls is None:  # an ignored category
                continue
            pixels = annotation_mask(ann, entry.height, entry.width, entry.where(ann), reduce)
            per_class[cls] = per_class[cls] | pixels if cls in per_class else pixels
            boxes.append(annotation_box(ann, cls, entry.height, entry.width, entry.where(ann)))
        shape = reduced_shape(entry.height, entry.width, reduce)
        mask = np.zeros(shape, dtype=np.uint8)
        cover = np.zeros(shape, dtype=np.uint8)
        for cls, pixels in sorted(per_class.items()):
            mask[pixels] = cls
            cover += pixels
        if mix is not None:
            mask[cover >= 2] = mix
        return mask, boxes

    return paint


def import_lemons(
    source_dir: Path | None = None,
    binary: str | None = None,
    classes: str | None = None,
    ignore: str | None = None,
    size: tuple[int, int] | None = None,
) -> SourceData:
    """Import the Lemons dataset (folder or zip ``source_dir``); see the module docstring for the rules."""
    if source_dir is None:
        raise OptionError("the lemons source needs --source DIR (the dataset folder or its zip)")
    if binary and classes:
        raise OptionError("--binary and --classes exclude each other: pick one")
    files = LemonsFiles(Path(source_dir))
    index = files.index()
    by_name = {name: cid for cid, name in sorted(index.categories.items())}
    where = files.where(ANNOTATIONS)
    ignored_names = _names(ignore, "--ignore", by_name, where)
    chosen_names = _names(binary or classes, "--binary" if binary else "--classes", by_name, where)
    if (binary or classes) and not chosen_names:
        raise OptionError(f"{'--binary' if binary else '--classes'}: name at least one category")
    clash = sorted(set(chosen_names) & set(ignored_names))
    if clash:
        raise OptionError(f"--ignore: {', '.join(clash)} cannot be chosen and ignored at once")
    ignored = {by_name[n] for n in ignored_names}
    subset = bool(chosen_names)
    chosen = {by_name[n] for n in chosen_names} if subset else set(index.categories) - ignored
    ordered = sorted(chosen)  # category-id order, as the thesis numbers its classes
    if binary:
        names = [chosen_names[0] if len(chosen_names) == 1 else "defect"]
        class_of, mix = {c: 1 for c in ordered}, None
    else:
        names = [index.categories[c] for c in ordered]
        class_of = {c: i + 1 for i, c in enumerate(ordered)}
        mix = len(ordered) + 1 if len(ordered) > 1 else None
        names += ["mix"] if mix else []
    entries = [e for e in index.images if in_subset(e, chosen, ignored, require_one=subset)]
    if not entries:
        raise DatasetError(
            f"no image has only {', '.join(index.categories[c] for c in ordered)} annotated "
            "(the subset is empty; --ignore lists categories that do not count)",
            where,
        )
    mode = "binary" if binary else "classes"
    manifest = Manifest(
        name=f"lemons-{mode}-{'-'.join(chosen_names)}" if subset else "lemons",
        classes=make_classes(names),
        source={
            "importer": "lemons",
            "source_dir": str(source_dir),
            "binary": binary,
            "classes": classes,
            "ignore": ignored_names,
            "merged": [index.categories[c] for c in ordered] if binary else None,
            "subset_rule": "every counted category on the image is chosen, at least one present"
            if subset
            else "all images",
        },
    )
    samples = _samples(files, entries, size, _painter(class_of, mix))
    return SourceData(manifest, samples, total=len(entries), group_of=fruit_id, default_size=LEMON_SIZE)


def _samples(files: LemonsFiles, entries: list[CocoImage], size: tuple[int, int] | None, paint) -> Iterator[Sample]:
    for entry in entries:
        relative = files.image_path(entry.file_name)
        yield coco_sample(entry, files.read(relative), files.where(relative), size, paint)
