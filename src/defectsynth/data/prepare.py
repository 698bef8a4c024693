"""``prepare``: import a raw dataset into a dataset folder.

Sources: ``toy`` (procedural, built in), ``lemons``, ``wood``, ``coco``, ``voc`` and ``masks``.
Each source is read by its importer in :mod:`defectsynth.data.sources`; this module resizes the
samples, assigns seeded (grouped) splits and writes the folder atomically with its statistics.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from defectsynth.checks import check_at_least
from defectsynth.data.model import Manifest, Sample
from defectsynth.data.resize import format_size, parse_size, resize_sample
from defectsynth.data.resize_loss import ResizeLoss, check_min_defect_pixels
from defectsynth.data.sources import SourceData
from defectsynth.data.splits import grouped_split, parse_fractions
from defectsynth.deprecation import renamed_keywords
from defectsynth.encoding.components import boxes_from_mask
from defectsynth.errors import DatasetError, OptionError
from defectsynth.formats.dataset import DatasetWriter
from defectsynth.locks import writes_output
from defectsynth.progress import track

logger = logging.getLogger(__name__)


# Importer arguments whose CLI flag is not simply ``--`` + the name with dashes.
_FLAGS = {"source_dir": "--source"}


def _importers() -> dict[str, Callable[..., SourceData]]:
    from defectsynth.data.sources import coco, lemons, masks, toy, voc, wood

    return {
        "toy": toy.import_toy,
        "lemons": lemons.import_lemons,
        "wood": wood.import_wood,
        "coco": coco.import_coco,
        "voc": voc.import_voc,
        "masks": masks.import_masks,
    }


def flag_name(argument: str) -> str:
    """The CLI flag of an importer argument (``source_dir`` -> ``--source``)."""
    return _FLAGS.get(argument, "--" + argument.replace("_", "-"))


def available_sources() -> list[str]:
    return list(_importers())


def _call_importer(source: str, options: dict[str, Any], size: tuple[int, int] | None, seed: int) -> SourceData:
    importers = _importers()
    if source not in importers:
        raise OptionError(f"unknown source {source!r}; choose one of: {', '.join(importers)}")
    importer = importers[source]
    accepted = inspect.signature(importer).parameters
    given = {k: v for k, v in options.items() if v is not None and v is not False}
    unsupported = sorted(set(given) - set(accepted))
    if unsupported:
        flags = ", ".join(flag_name(k) for k in unsupported)
        raise OptionError(f"{flags} cannot be used with the {source!r} source")
    if "size" in accepted:
        given["size"] = size
    if "seed" in accepted:
        given["seed"] = seed
    return importer(**given)


def _finish(
    sample: Sample,
    data: SourceData,
    target: tuple[int, int] | None,
    keep: bool,
    loss: ResizeLoss,
    min_defect_pixels: int | None,
) -> Sample:
    """Resize ``sample`` to ``target`` unless the importer did (recording in ``loss`` what resizing
    took away, refusing it below ``min_defect_pixels``), then derive its boxes from its mask if the
    importer asked for it (at the output size, so the boxes are tight there)."""
    resized = sample if data.resized else resize_sample(sample, target, keep)
    if resized is not sample:
        loss.add(sample, resized, data.derives_boxes(sample.stem))
    if min_defect_pixels:
        check_min_defect_pixels(sample, resized, min_defect_pixels, loss.names)
    sample = resized
    if data.derives_boxes(sample.stem):
        if sample.mask is None:
            raise DatasetError("boxes are to be derived from the mask, but this sample has none", sample.stem)
        sample.boxes = boxes_from_mask(sample.mask, min_area=data.min_box_area)
    return sample


@renamed_keywords(split="split_fractions")
@writes_output("prepare", "out")
def prepare(
    source: str,
    out: str | Path,
    *,
    size: str | tuple[int, int] | None = None,
    keep_aspect: bool | None = None,
    split_fractions: str = "0.7,0.2,0.1",
    seed: int = 0,
    overwrite: bool = False,
    image_format: str = "png",
    min_defect_pixels: int | None = None,
    progress: bool = False,
    **options: Any,
) -> Manifest:
    """Import ``source`` into the dataset folder ``out`` and return its manifest (with stats).

    size: ``256`` or ``"WIDTHxHEIGHT"`` (or a (height, width) tuple); None uses the source's default.
    keep_aspect: scale to fit and pad instead of stretching; None uses the source's default.
    split_fractions: train/val/test fractions, used unless the source has official splits (the old
    keyword ``split`` still works for one release, with a DeprecationWarning).
    min_defect_pixels: refuse (DatasetError naming the stem and class) when a class present in an
    image keeps fewer pixels than this in the written mask. Without it, classes that resizing removes
    from an image and boxes it empties are logged as a warning and counted in ``source["resize_loss"]``
    (see :mod:`defectsynth.data.resize_loss`).
    options: the importer's own options (``num``, ``classes``, ``source_dir``, ``binary`` ...); an
    option the importer does not take is refused with an :class:`OptionError`.
    """
    fractions = parse_fractions(split_fractions)
    if min_defect_pixels is not None:
        check_at_least("--min-defect-pixels", min_defect_pixels)
    target = parse_size(size)
    data = _call_importer(source, options, target, seed)
    target = target or data.default_size
    keep = data.default_keep_aspect if keep_aspect is None else keep_aspect
    manifest = data.manifest
    manifest.source.update(
        {"size": format_size(target) if target else None, "keep_aspect": keep, "split": split_fractions}
    )
    loss = ResizeLoss(manifest.class_names, format_size(target) if target else "the source size")
    with DatasetWriter(out, manifest, overwrite=overwrite, image_format=image_format) as writer:
        for sample in track(data.samples, total=data.total, description=f"prepare {source}", enabled=progress):
            writer.add(_finish(sample, data, target, keep, loss, min_defect_pixels))
        if not data.resized and target is not None:
            manifest.source["resize_loss"] = loss.to_json()
        if min_defect_pixels:
            manifest.source["min_defect_pixels"] = min_defect_pixels
        splits = data.fixed_splits or grouped_split(sorted(writer.stems), fractions, seed, data.group_of)
        writer.commit({k: [s for s in v if s in writer.stems] for k, v in splits.items()})
    loss.warn()
    logger.info("wrote %d samples to %s", len(writer.stems), out)
    return manifest
