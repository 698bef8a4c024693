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

from defectsynth.data.model import Manifest
from defectsynth.data.resize import format_size, parse_size, resize_sample
from defectsynth.data.sources import SourceData
from defectsynth.data.splits import grouped_split, parse_fractions
from defectsynth.data.writer import DatasetWriter
from defectsynth.errors import OptionError
from defectsynth.progress import track

logger = logging.getLogger(__name__)


def _importers() -> dict[str, Callable[..., SourceData]]:
    from defectsynth.data.sources import toy

    return {"toy": toy.import_toy}


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
        flags = ", ".join("--" + k.replace("_", "-") for k in unsupported)
        raise OptionError(f"{flags} cannot be used with the {source!r} source")
    if "size" in accepted:
        given["size"] = size
    if "seed" in accepted:
        given["seed"] = seed
    return importer(**given)


def prepare(
    source: str,
    out: str | Path,
    *,
    size: str | tuple[int, int] | None = None,
    keep_aspect: bool | None = None,
    split: str = "0.7,0.2,0.1",
    seed: int = 0,
    overwrite: bool = False,
    image_format: str = "png",
    progress: bool = False,
    **options: Any,
) -> Manifest:
    """Import ``source`` into the dataset folder ``out`` and return its manifest (with stats).

    size: ``256`` or ``"WIDTHxHEIGHT"`` (or a (height, width) tuple); None uses the source's default.
    keep_aspect: scale to fit and pad instead of stretching; None uses the source's default.
    split: train/val/test fractions, used unless the source has official splits.
    options: the importer's own options (``num``, ``classes``, ``source_dir``, ``binary`` ...).
    """
    fractions = parse_fractions(split)
    target = parse_size(size)
    data = _call_importer(source, options, target, seed)
    target = target or data.default_size
    keep = data.default_keep_aspect if keep_aspect is None else keep_aspect
    manifest = data.manifest
    manifest.source.update({"size": format_size(target) if target else None, "keep_aspect": keep, "split": split})
    with DatasetWriter(out, manifest, overwrite=overwrite, image_format=image_format) as writer:
        for sample in track(data.samples, total=data.total, description=f"prepare {source}", enabled=progress):
            writer.add(sample if data.resized else resize_sample(sample, target, keep))
        splits = data.fixed_splits or grouped_split(sorted(writer.stems), fractions, seed, data.group_of)
        writer.commit({k: [s for s in v if s in writer.stems] for k, v in splits.items()})
    logger.info("wrote %d samples to %s", len(writer.stems), out)
    return manifest
