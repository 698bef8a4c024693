"""The voc importer on a tiny VOCdevkit: palette PNGs with 255 borders, official splits, XML boxes."""

from __future__ import annotations

import numpy as np
from _formats import VOC_LAYOUT, VOC_NO_XML, VOC_TRAIN, VOC_VAL, write_voc

from defectsynth.data import Dataset
from defectsynth.data.prepare import prepare


def test_voc_masks_splits_and_boxes(tmp_path):
    root = write_voc(tmp_path / "VOCdevkit" / "VOC2012")
    manifest = prepare("voc", tmp_path / "v", source_dir=root, size="40x32", split_fractions="0.5,0.5")
    assert len(manifest.classes) == 21 and manifest.classes[15].name == "person"
    ds = Dataset(tmp_path / "v")
    assert ds.split("train") == sorted(VOC_TRAIN) and ds.split("val") == VOC_VAL  # official lists, not --split
    for stem, objects in VOC_LAYOUT.items():
        s = ds.read(stem)
        expected = np.zeros((32, 40), np.uint8)
        for cls, (x0, y0, x1, y1) in objects:
            expected[max(0, y0 - 1) : y1 + 1, max(0, x0 - 1) : x1 + 1] = 255
            expected[y0:y1, x0:x1] = cls
        assert np.array_equal(s.mask, expected), stem
        boxes = sorted((b.cls, b.xyxy) for b in s.boxes)
        assert boxes == sorted((cls, rect) for cls, rect in objects), stem
    assert manifest.source["boxes_from_masks"] == 1  # VOC_NO_XML got its box from its mask
    assert VOC_NO_XML in ds.stems


def test_voc_boxes_from_masks_are_computed_after_resizing(tmp_path):
    root = write_voc(tmp_path / "VOC2012")
    prepare("voc", tmp_path / "v", source_dir=root, size="20x16")
    s = Dataset(tmp_path / "v").read(VOC_NO_XML)
    ys, xs = np.nonzero(s.mask == 7)
    assert [b.xyxy for b in s.boxes] == [(int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)]
