"""Importers: one module per raw source, each turning a public dataset layout into samples.

An importer is a function of its own options that returns a :class:`SourceData`; ``prepare``
resizes the samples, splits them and writes the dataset folder. Register new importers in
:data:`SOURCES`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field

from defectsynth.data.model import Manifest, Sample


@dataclass
class SourceData:
    """What an importer hands to ``prepare``.

    samples: an iterable of :class:`Sample` at the source's resolution (or already at ``size`` when
    the importer renders them itself). total: the number of samples, for the progress bar.
    group_of: stem -> group key; samples of one group never straddle two splits.
    fixed_splits: the dataset's official splits, used instead of a random split when given.
    resized: True when the samples already have the requested size (toy renders at any size).
    boxes_from_mask: True when every sample's boxes are to be computed from its mask, or the stems
    for which they are (VOC images without XML). ``prepare`` does this AFTER resizing, with
    :func:`defectsynth.encoding.boxes_from_mask`, so the boxes are exact at the output size;
    components smaller than ``min_box_area`` output pixels are dropped.
    """

    manifest: Manifest
    samples: Iterable[Sample]
    total: int | None = None
    group_of: Callable[[str], str] | None = None
    fixed_splits: dict[str, list[str]] | None = None
    resized: bool = False
    default_size: tuple[int, int] | None = (256, 256)
    default_keep_aspect: bool = False
    boxes_from_mask: bool | Collection[str] = False
    min_box_area: int = 1
    extra: dict = field(default_factory=dict)

    def derives_boxes(self, stem: str) -> bool:
        """Whether ``prepare`` computes the boxes of ``stem`` from its mask."""
        if isinstance(self.boxes_from_mask, bool):
            return self.boxes_from_mask
        return stem in self.boxes_from_mask
