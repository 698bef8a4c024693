"""``encode-boxes``: the BASD / C-BASD cache of a dataset folder, its previews, and boxes from masks.

Written inside the dataset folder::

    <dataset>/
      conditions/<stem>.npz          basd (H, W) float32, cbasd (H, W) uint8, xyxy (N, 4) int32,
                                     classes (N,) int32, class_fill () str; no pickled objects
      conditions/preview/<stem>.png  image | BASD | C-BASD, for the first ``preview`` stems
      boxes/<stem>.json              rewritten from the masks only when ``from_masks=True`` (and
                                     the ``stats`` of dataset.json with them)

The cache is optional: training and sampling can compute the same maps on the fly with
:func:`defectsynth.encoding.basd_maps`; ``xyxy``, ``classes`` and ``class_fill`` let a reader check
that a cached file still matches the boxes. Everything is validated before anything is written;
``conditions/`` (and ``boxes/``) are built beside the dataset and swapped in whole at the end, so an
interrupted run leaves the previous cache intact and no stale files. The files' writer and reader:
:mod:`defectsynth.formats.conditions`.
"""

from __future__ import annotations

import logging
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from defectsynth.checks import check_at_least, check_choice
from defectsynth.data.files import (
    atomic_write_bytes,
    encode_png,
    partial_dir,
    read_image,
    read_json,
    replace_dir,
    write_json,
)
from defectsynth.data.model import Box, Sample, boxes_to_array
from defectsynth.encoding.boxes import CLASS_FILLS, basd_maps
from defectsynth.encoding.components import boxes_from_mask
from defectsynth.encoding.preview import render_preview
from defectsynth.errors import DatasetError, OptionError
from defectsynth.formats.conditions import CONDITIONS_DIR, PREVIEW_DIR, read_conditions, write_conditions  # noqa: F401  (read_conditions: documented here)
from defectsynth.formats.dataset import Dataset, DatasetStats
from defectsynth.locks import writes_output
from defectsynth.progress import track

logger = logging.getLogger(__name__)

_SHOWN_PROBLEMS = 5


@dataclass
class EncodeSummary:
    """What :func:`encode_boxes` wrote."""

    root: Path
    class_fill: str
    maps: int = 0
    boxes_per_class: Counter = field(default_factory=Counter)
    previews: list[Path] = field(default_factory=list)
    boxes_rewritten: bool = False

    @property
    def conditions_dir(self) -> Path:
        return self.root / CONDITIONS_DIR


@writes_output("encode-boxes", "dataset")
def encode_boxes(
    dataset: str | Path,
    class_fill: str = "inside",
    preview: int = 0,
    from_masks: bool = False,
    min_box_area: int = 1,
    progress: bool = True,
) -> EncodeSummary:
    """Write ``conditions/<stem>.npz`` for every image of ``dataset`` (and ``preview`` PNGs).

    With ``from_masks`` the boxes are first derived from the connected components of each class in
    the masks (components under ``min_box_area`` pixels dropped) and ``boxes/`` is rewritten.
    Bad boxes (empty, inverted, outside the image) or masks are reported for every file at once.
    """
    _check_options(class_fill, preview, from_masks, min_box_area)
    ds = Dataset(dataset)
    if from_masks and not ds.has_masks:
        raise DatasetError("--from-masks needs masks, and this dataset has no masks/ folder", ds.root)
    stats = DatasetStats(ds.manifest.num_classes) if from_masks else None
    boxes = _collect_boxes(ds, from_masks, min_box_area, progress, stats)
    summary = EncodeSummary(ds.root, class_fill, boxes_rewritten=from_masks)
    conditions_tmp = partial_dir(ds.root / CONDITIONS_DIR)
    boxes_tmp = partial_dir(ds.root / "boxes") if from_masks else None
    threads = torch.get_num_threads()
    try:
        # One map is too small to share between threads: on 2 busy cores, 300 maps of 256x256 took
        # about 7 s with torch's default threads and 4 s with one (reading and writing included).
        torch.set_num_threads(1)
        for k, stem in enumerate(track(ds.stems, len(ds.stems), "encoding boxes", progress)):
            size, stem_boxes = boxes[stem]
            basd, cbasd = _write_conditions(conditions_tmp / f"{stem}.npz", stem_boxes, size, class_fill)
            if k < preview:
                _write_preview(
                    ds, stem, basd, cbasd, stem_boxes, class_fill, conditions_tmp / PREVIEW_DIR / f"{stem}.png"
                )
                summary.previews.append(ds.root / CONDITIONS_DIR / PREVIEW_DIR / f"{stem}.png")
            if boxes_tmp is not None:
                write_json(boxes_tmp / f"{stem}.json", [b.to_json() for b in stem_boxes], durable=False)
            summary.boxes_per_class.update(b.cls for b in stem_boxes)
            summary.maps += 1
        if boxes_tmp is not None:
            replace_dir(boxes_tmp, ds.root / "boxes")
            _update_stats(ds, stats)
        replace_dir(conditions_tmp, ds.root / CONDITIONS_DIR)
    finally:
        torch.set_num_threads(threads)
        for tmp in (conditions_tmp, boxes_tmp):
            if tmp is not None and tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return summary


def _check_options(class_fill: str, preview: int, from_masks: bool, min_box_area: int) -> None:
    check_choice("--class-fill", class_fill, CLASS_FILLS)
    if preview < 0:
        raise OptionError(f"--preview must be 0 or more, got {preview}")
    check_at_least("--min-box-area", min_box_area, unit=" pixel")
    if min_box_area != 1 and not from_masks:
        raise OptionError("--min-box-area only applies with --from-masks")


def _collect_boxes(
    ds: Dataset, from_masks: bool, min_box_area: int, progress: bool, stats: DatasetStats | None
) -> dict[str, tuple[tuple[int, int], list[Box]]]:
    """Image size and boxes of every stem; every file's problem is logged, then one error raised.
    With ``from_masks``, ``stats`` counts the masks and their new boxes for ``dataset.json``."""
    found: dict[str, tuple[tuple[int, int], list[Box]]] = {}
    problems: list[str] = []
    for stem in track(ds.stems, len(ds.stems), "checking boxes", progress):
        try:
            image = read_image(ds.image_path(stem))
            size = image.shape[:2]
            if from_masks:
                mask = ds.read_mask(stem, size)
                stem_boxes = boxes_from_mask(mask, min_area=min_box_area)
                stats.add(Sample(stem, image, mask, stem_boxes))
            else:
                stem_boxes = ds.read_boxes(stem)  # geometry checked here, to report every bad box
                bad = [p for p in (b.problem(*size) for b in stem_boxes) if p]
                if bad:
                    raise DatasetError("; ".join(bad), ds.boxes_path(stem))
        except DatasetError as err:
            logger.info("%s", err)
            problems.append(str(err))
            continue
        found[stem] = (size, stem_boxes)
    if problems:
        shown = "; ".join(problems[:_SHOWN_PROBLEMS])
        more = (
            f"; and {len(problems) - _SHOWN_PROBLEMS} more (run with -v to list them)"
            if len(problems) > _SHOWN_PROBLEMS
            else ""
        )
        raise DatasetError(
            f"{len(problems)} of {len(ds.stems)} files have problems, nothing was written: {shown}{more}"
        )
    return found


def _write_conditions(
    path: Path, boxes: list[Box], size: tuple[int, int], class_fill: str
) -> tuple[np.ndarray, np.ndarray]:
    xyxy, classes = boxes_to_array(boxes)
    basd, cbasd = basd_maps(xyxy, classes, size[0], size[1], class_fill)
    write_conditions(path, basd, cbasd, xyxy, classes, class_fill)
    return basd, cbasd


def _write_preview(ds: Dataset, stem: str, basd, cbasd, boxes: list[Box], class_fill: str, path: Path) -> None:
    image = read_image(ds.image_path(stem))
    preview = render_preview(image, basd, cbasd, boxes, ds.manifest.classes, class_fill, title=stem)
    atomic_write_bytes(path, encode_png(preview, path), durable=False)


def _update_stats(ds: Dataset, stats: DatasetStats) -> None:
    """Rewrite the statistics in ``dataset.json`` for the new boxes, keeping every other key."""
    path = ds.root / "dataset.json"
    data = read_json(path)
    data["stats"] = stats.to_json(ds.manifest)
    write_json(path, data)
