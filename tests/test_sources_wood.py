"""The wood importer on a Kodytek-style archive: BMPs, colour maps, comma decimals, the specification file."""

from __future__ import annotations

import numpy as np
import pytest
from _formats import WOOD_CLEAN, WOOD_H, WOOD_LAYOUT, WOOD_W, write_wood

from defectsynth.data import Dataset
from defectsynth.data.prepare import prepare
from defectsynth.data.sources.wood import WOOD_CLASSES, parse_boxes_file, parse_specification

KEPT = {
    "Live_knot": 1,
    "Death_know": 1,
    "Knot_missing": 1,
    "knot_with_crack": 1,
    "Crack": 2,
    "Quartzity": 3,
    "resin": 4,
    "Marrow": 5,
}


@pytest.fixture(scope="module")
def wood(tmp_path_factory):
    return write_wood(tmp_path_factory.mktemp("raw") / "wood")


def _expected(stem):
    mask = np.zeros((WOOD_H, WOOD_W), np.uint8)
    boxes = []
    for name, (x0, y0, x1, y1) in WOOD_LAYOUT.get(stem, []):
        if name in KEPT:
            mask[y0:y1, x0:x1] = KEPT[name]
            boxes.append((KEPT[name], (x0, y0, x1, y1)))
    return mask, boxes


def test_wood_at_source_size_is_exact(wood, tmp_path):
    manifest = prepare("wood", tmp_path / "w", source_dir=wood, size=f"{WOOD_W}x{WOOD_H}")
    assert [c.name for c in manifest.classes][1:] == list(WOOD_CLASSES)
    ds = Dataset(tmp_path / "w")
    assert ds.stems == sorted([*WOOD_LAYOUT, WOOD_CLEAN])
    for stem in ds.stems:
        s = ds.read(stem)
        mask, boxes = _expected(stem)
        assert np.array_equal(s.mask, mask), stem
        assert [(b.cls, b.xyxy) for b in s.boxes] == boxes, stem
    # blue stain and overgrown dropped: 100000003 is left defect-free, like the clean image
    assert manifest.stats["defect_free_images"] == 2


def test_wood_default_size_pads_then_downscales(wood, tmp_path):
    manifest = prepare("wood", tmp_path / "w", source_dir=wood, size="40x20", keep_aspect=None)
    assert manifest.source["keep_aspect"] is True
    s = Dataset(tmp_path / "w").read("100000000")
    # 80x32 into 40x20 keeping the aspect: scaled 0.5 to 40x16, 4 rows of background padding
    assert s.image.shape == (20, 40, 3) and not s.mask[16:].any()
    assert [b.xyxy for b in s.boxes] == [(4, 2, 12, 10), (20, 5, 36, 7)]


def test_wood_default_size_is_352x128(wood, tmp_path):
    manifest = prepare("wood", tmp_path / "w", source_dir=wood)
    assert manifest.source["size"] == "352x128"
    assert Dataset(tmp_path / "w").read("100000005").image.shape == (128, 352, 3)
    assert sum(len(Dataset(tmp_path / "w").split(n)) for n in ("train", "val", "test")) == 6


def test_box_file_comma_decimals_and_misspellings():
    text = "Death_know\t0,25\t0,5\t0,5\t1,0\nQuartzite 0.0 0.0 0.1 0.1\nBlue_stain\t0.1\t0.1\t0.2\t0.2\n"
    boxes = parse_boxes_file(text, 100, 200, "x")
    assert [(b.cls, b.xyxy) for b in boxes] == [(1, (50, 50, 100, 100)), (3, (0, 0, 20, 10))]


def test_specification_formats():
    assert parse_specification("name=Live_knot\nR=0\nG=255\nB=0\n", "x") == {(0, 255, 0): "Live_knot"}
    assert parse_specification("Live_knot: (0, 255, 0)\nCrack\t#ff0064\n", "x") == {
        (0, 255, 0): "Live_knot",
        (255, 0, 100): "Crack",
    }
    assert parse_specification("Semantic maps\nLive_knot\nRed: 0\nGreen: 255\nBlue: 0\n", "x") == {
        (0, 255, 0): "Live_knot"
    }
