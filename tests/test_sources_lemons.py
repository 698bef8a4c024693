"""The lemons importer on a small CVAT COCO export with the lemon schema (ids 1..9)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _formats import RLE_RECT, RLE_STEM, write_lemons, zip_folder

from defectsynth.data import Dataset
from defectsynth.data.prepare import prepare


@pytest.fixture(scope="module")
def lemons(tmp_path_factory):
    return write_lemons(tmp_path_factory.mktemp("raw") / "lemons")


def test_binary_blemish_is_the_strict_subset(lemons, tmp_path):
    manifest = prepare("lemons", tmp_path / "b", source_dir=lemons, binary="blemish", size="64")
    ds = Dataset(tmp_path / "b")
    # 0001_B also has a pedicel, 0004_A a gangrene: not in the strict subset
    assert ds.stems == ["0001_A", "0006_A"]
    assert [c.name for c in manifest.classes] == ["background", "blemish"]
    s = ds.read("0001_A")
    expected = np.zeros((64, 64), np.uint8)
    expected[10:20, 10:30] = 1
    assert np.array_equal(s.mask, expected)
    assert [b.xyxy for b in s.boxes] == [(10, 10, 30, 20)]
    s = ds.read("0006_A")
    expected = np.zeros((64, 64), np.uint8)
    expected[16:48, 16:32] = 1
    expected[40:56, 24:40] = 1
    assert np.array_equal(s.mask, expected)
    assert sorted(b.xyxy for b in s.boxes) == [(16, 16, 32, 48), (24, 40, 40, 56)]


def test_ignore_widens_the_subset_and_drops_those_pixels(lemons, tmp_path):
    prepare("lemons", tmp_path / "b", source_dir=lemons, binary="blemish", ignore="pedicel", size="64")
    ds = Dataset(tmp_path / "b")
    assert ds.stems == ["0001_A", "0001_B", "0006_A"]
    s = ds.read("0001_B")
    assert set(np.unique(s.mask[0:8, 30:40]).tolist()) == {0}  # the pedicel is background
    assert [b.xyxy for b in s.boxes] == [(4, 40, 20, 60)]


def test_merged_binary_and_multiclass_mix(lemons, tmp_path):
    prepare("lemons", tmp_path / "m", source_dir=lemons, binary="blemish,illness,mould", size="64")
    merged = Dataset(tmp_path / "m")
    assert merged.manifest.class_names == {0: "background", 1: "defect"}
    assert merged.stems == ["0001_A", "0002_A", "0003_A", "0006_A", RLE_STEM]
    assert set(np.unique(merged.read("0002_A").mask).tolist()) == {0, 1}

    prepare("lemons", tmp_path / "c", source_dir=lemons, classes="blemish,illness,mould", size="64")
    multi = Dataset(tmp_path / "c")
    # category-id order: illness (2), mould (4), blemish (5), then mix
    assert multi.manifest.class_names == {0: "background", 1: "illness", 2: "mould", 3: "blemish", 4: "mix"}
    s = multi.read("0002_A")
    expected = np.zeros((64, 64), np.uint8)
    expected[10:40, 10:40] = 1
    expected[30:50, 30:50] = 2
    expected[30:40, 30:40] = 4  # illness and mould overlap
    assert np.array_equal(s.mask, expected)
    assert sorted((b.cls, b.xyxy) for b in s.boxes) == [(1, (10, 10, 40, 40)), (2, (30, 30, 50, 50))]
    # two blemishes overlapping are still blemish, not mix
    assert set(np.unique(multi.read("0006_A").mask).tolist()) == {0, 3}
    saved = json.loads((tmp_path / "c" / "dataset.json").read_text())
    assert saved["stats"]["images_per_class"]["mix"] == 1


def test_rle_compressed_and_crowd(lemons, tmp_path):
    prepare("lemons", tmp_path / "r", source_dir=lemons, binary="illness", size="64")
    s = Dataset(tmp_path / "r").read(RLE_STEM)
    x0, y0, x1, y1 = RLE_RECT
    expected = np.zeros((64, 64), np.uint8)
    expected[y0:y1, x0:x1] = 1
    assert np.array_equal(s.mask, expected)
    assert [b.xyxy for b in s.boxes] == [(x0, y0, x1, y1), (x0, y0, x1, y1)]


def test_jpeg_reduced_decoding_keeps_masks_exact(lemons, tmp_path):
    prepare("lemons", tmp_path / "s", source_dir=lemons, binary="blemish", size="16")
    s = Dataset(tmp_path / "s").read("0006_A")
    expected = np.zeros((16, 16), np.uint8)
    expected[4:12, 4:8] = 1
    expected[10:14, 6:10] = 1
    assert s.image.shape == (16, 16, 3)
    assert np.array_equal(s.mask, expected)
    assert sorted(b.xyxy for b in s.boxes) == [(4, 4, 8, 12), (6, 10, 10, 14)]


def test_splits_grouped_by_fruit_id(lemons, tmp_path):
    for seed in range(6):
        out = tmp_path / f"s{seed}"
        prepare(
            "lemons",
            out,
            source_dir=lemons,
            ignore="pedicel,gangrene",
            binary="blemish,illness,mould",
            size="32",
            split_fractions="0.5,0.5",
            seed=seed,
        )
        ds = Dataset(out)
        fruits = [{s[:4] for s in ds.split(name)} for name in ds.split_names]
        assert sorted(s for name in ds.split_names for s in ds.split(name)) == ds.stems
        assert not fruits[0] & fruits[1]
        assert {"0001_A", "0001_B"} <= set(ds.split("train")) or {"0001_A", "0001_B"} <= set(ds.split("val"))


def test_zip_equals_folder(lemons, tmp_path):
    archive = zip_folder(lemons, tmp_path / "lemons.zip")
    before = sorted(p.name for p in tmp_path.iterdir())
    prepare("lemons", tmp_path / "z", source_dir=archive, classes="blemish,illness,mould", size="32")
    prepare("lemons", tmp_path / "f", source_dir=lemons, classes="blemish,illness,mould", size="32")
    for sub in ("images", "masks", "boxes", "splits"):
        for path in sorted((tmp_path / "f" / sub).iterdir()):
            assert path.read_bytes() == (tmp_path / "z" / sub / path.name).read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*before, "z", "f"])


def test_whole_dataset_without_subset(lemons, tmp_path):
    manifest = prepare("lemons", tmp_path / "all", source_dir=lemons, size="32")
    assert len(manifest.classes) == 11  # background, nine categories, mix
    assert manifest.stats["images"] == 8 and manifest.stats["defect_free_images"] == 1


def test_rle_on_the_reduced_grid(lemons, tmp_path):
    prepare("lemons", tmp_path / "r", source_dir=lemons, binary="illness", size="16")
    s = Dataset(tmp_path / "r").read(RLE_STEM)
    expected = np.zeros((16, 16), np.uint8)
    expected[1:7, 1:5] = 1  # cells whose centre (4j + 2) lies in the RLE rectangle (5, 6, 21, 30)
    assert np.array_equal(s.mask, expected)
    assert [b.xyxy for b in s.boxes] == [(1, 1, 6, 8), (1, 1, 6, 8)]
