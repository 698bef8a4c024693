"""The masks importer: images/ + masks/, side by side, binary 0/255, class ids, palettes, class folders."""

from __future__ import annotations

import json

import numpy as np
from _formats import rect_mask, write_jpeg, write_mask_file, write_pair

from defectsynth.data import Dataset
from defectsynth.data.prepare import prepare


def test_images_and_masks_folders_with_class_ids(tmp_path):
    src = tmp_path / "src"
    m1 = rect_mask(24, 32, (2, 2, 10, 8), value=1)
    m1[12:20, 20:30] = 2
    m1[0, 31] = 255
    write_jpeg(src / "images" / "p1.jpg", 24, 32)
    write_mask_file(src / "masks" / "p1.png", m1)
    manifest = prepare("masks", tmp_path / "o", source_dir=src, classes="scratch,dent", size="32x24")
    assert manifest.class_names == {0: "background", 1: "scratch", 2: "dent"}
    s = Dataset(tmp_path / "o").read("p1")
    assert np.array_equal(s.mask, m1)
    assert [(b.cls, b.xyxy) for b in s.boxes] == [(1, (2, 2, 10, 8)), (2, (20, 12, 30, 20))]


def test_side_by_side_binary_and_min_box_area(tmp_path):
    src = tmp_path / "src"
    write_pair(src, "a", rect_mask(16, 16, (1, 1, 5, 5), (10, 10, 11, 11), value=255), mask_name="a_mask.png")
    write_pair(src, "b", rect_mask(16, 16, (3, 3, 9, 6), value=255), image_ext=".bmp", mask_name="b.png", seed=3)
    manifest = prepare("masks", tmp_path / "o", source_dir=src, size="16", min_box_area=2)
    assert manifest.class_names == {0: "background", 1: "defect"}
    ds = Dataset(tmp_path / "o")
    assert ds.stems == ["a", "b"]
    a = ds.read("a")
    assert set(np.unique(a.mask).tolist()) == {0, 1} and a.mask[10, 10] == 1
    assert [b.xyxy for b in a.boxes] == [(1, 1, 5, 5)]  # the 1-pixel blob is under --min-box-area
    assert [b.xyxy for b in ds.read("b").boxes] == [(3, 3, 9, 6)]


def test_boxes_are_tight_at_the_output_size(tmp_path):
    src = tmp_path / "src"
    write_pair(src, "a", rect_mask(64, 64, (8, 8, 40, 24), value=255), mask_name="a_mask.png")
    prepare("masks", tmp_path / "o", source_dir=src, size="16")
    assert [b.xyxy for b in Dataset(tmp_path / "o").read("a").boxes] == [(2, 2, 10, 6)]


def test_palette_colours(tmp_path):
    src = tmp_path / "src"
    colour = np.zeros((12, 12, 3), np.uint8)
    colour[0:4, 0:4] = (255, 0, 0)
    colour[6:12, 6:12] = (0, 0, 255)
    write_jpeg(src / "images" / "c.jpg", 12, 12)
    write_mask_file(src / "masks" / "c_mask.png", colour)
    (tmp_path / "pal.json").write_text(json.dumps({"background": [0, 0, 0], "rust": [255, 0, 0], "hole": [0, 0, 255]}))
    manifest = prepare("masks", tmp_path / "o", source_dir=src, palette=tmp_path / "pal.json", size="12")
    assert manifest.class_names == {0: "background", 1: "rust", 2: "hole"}
    s = Dataset(tmp_path / "o").read("c")
    assert np.array_equal(s.mask, rect_mask(12, 12, (0, 0, 4, 4)) + rect_mask(12, 12, (6, 6, 12, 12), value=2))


def test_class_from_folder_with_background_folder(tmp_path):
    src = tmp_path / "src"
    write_pair(src / "MT_Blowhole", "exp1", rect_mask(16, 16, (2, 2, 6, 6), value=255))
    write_pair(src / "MT_Crack", "exp1", rect_mask(16, 16, (8, 0, 10, 16), value=1), seed=1)
    for i in range(2):
        write_jpeg(src / "MT_Free" / f"f{i}.jpg", 16, 16, seed=5 + i)  # defect-free images need no masks
    manifest = prepare(
        "masks", tmp_path / "o", source_dir=src, class_from_folder=True, background_folder="MT_Free", size="16"
    )
    assert manifest.class_names == {0: "background", 1: "MT_Blowhole", 2: "MT_Crack"}
    ds = Dataset(tmp_path / "o")
    assert ds.stems == ["MT_Blowhole_exp1", "MT_Crack_exp1", "MT_Free_f0", "MT_Free_f1"]
    assert np.array_equal(ds.read("MT_Crack_exp1").mask, rect_mask(16, 16, (8, 0, 10, 16), value=2))
    assert [(b.cls, b.xyxy) for b in ds.read("MT_Blowhole_exp1").boxes] == [(1, (2, 2, 6, 6))]
    assert manifest.stats["defect_free_images"] == 2
