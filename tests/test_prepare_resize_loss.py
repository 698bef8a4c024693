"""``prepare`` never loses a defect to resizing without a word: warnings, counts, --min-defect-pixels."""

from __future__ import annotations

import json
import logging

import cv2
import numpy as np
import pytest
from _formats import ann, coco_file, rect_mask, write_pair

from defectsynth.cli import app
from defectsynth.data.prepare import prepare
from defectsynth.errors import DatasetError


@pytest.fixture(scope="module")
def tiny_masks(tmp_path_factory):
    """32x32 masks; at 8x8 (nearest neighbour keeps source rows/columns 0, 4, 8, ...) a 1-px defect
    at (5, 5) or (1, 1) vanishes. a: class 1 is only that pixel (the class vanishes from the image);
    b: class 1 keeps a large rectangle but its 1-px component's box is emptied; c: nothing is lost."""
    src = tmp_path_factory.mktemp("masks")
    a = rect_mask(32, 32, (8, 8, 24, 24), value=2)
    a[5, 5] = 1
    b = rect_mask(32, 32, (12, 12, 28, 28), value=1)
    b[1, 1] = 1
    write_pair(src, "a", a)
    write_pair(src, "b", b, seed=1)
    write_pair(src, "c", rect_mask(32, 32, (0, 0, 16, 16), value=2), seed=2)
    return src


def test_resizing_warns_per_class_and_records_the_counts(tiny_masks, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="defectsynth"):
        manifest = prepare("masks", tmp_path / "o", source_dir=tiny_masks, size="8")
    loss = manifest.source["resize_loss"]
    assert loss["size"] == "8x8"
    assert loss["images_with_class_lost"] == {"class1": 1, "class2": 0}
    assert loss["stems_with_class_lost"] == {"class1": ["a"]}
    assert loss["boxes_emptied"] == {"class1": 2, "class2": 0}  # a's pixel and b's pixel
    assert loss["stems_with_boxes_emptied"] == {"class1": ["a", "b"]}
    assert json.loads((tmp_path / "o" / "dataset.json").read_text())["source"]["resize_loss"] == loss
    text = caplog.text
    assert "removed every pixel of a class" in text and "class1: 1 (a)" in text
    assert "class1: 2 in a, b" in text and "class2" not in text


def test_no_resizing_no_loss_no_warning(tiny_masks, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="defectsynth"):
        manifest = prepare("masks", tmp_path / "o", source_dir=tiny_masks, size="32")
    assert manifest.source["resize_loss"]["boxes_emptied"] == {"class1": 0, "class2": 0}
    assert manifest.source["resize_loss"]["images_with_class_lost"] == {"class1": 0, "class2": 0}
    assert not caplog.records


def test_warning_names_the_first_stems_and_a_count(tmp_path, caplog):
    src = tmp_path / "src"
    for i in range(7):
        mask = np.zeros((32, 32), np.uint8)
        mask[5, 5] = 1
        write_pair(src, f"s{i}", mask, seed=i)
    with caplog.at_level(logging.WARNING, logger="defectsynth"):
        prepare("masks", tmp_path / "o", source_dir=src, size="8")
    assert "class1: 7 (s0, s1, s2, s3, s4 +2 more)" in caplog.text


def test_min_defect_pixels_refuses_and_keeps_what_was_there(tiny_masks, tmp_path, runner):
    out = tmp_path / "o"
    base = ["prepare", "masks", "--source", str(tiny_masks), "--out", str(out), "--no-progress"]
    assert runner.invoke(app, [*base, "--size", "32"]).exit_code == 0
    result = runner.invoke(app, [*base, "--size", "8", "--overwrite", "--min-defect-pixels", "1"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert (
        len(lines) == 1 and "a: class 'class1' keeps 0 pixels at 8x8 (1 before); --min-defect-pixels is 1" in lines[0]
    )
    assert json.loads((out / "dataset.json").read_text())["source"]["size"] == "32x32"  # the old folder stays
    assert cv2.imread(str(out / "masks" / "a.png"), cv2.IMREAD_UNCHANGED).shape == (32, 32)


def test_min_defect_pixels_counts_pixels_after_resizing(tmp_path):
    src = tmp_path / "src"
    write_pair(src, "c", rect_mask(32, 32, (0, 0, 16, 16), value=1))  # 256 pixels, 64 at 16x16
    manifest = prepare("masks", tmp_path / "ok", source_dir=src, size="16", min_defect_pixels=64)
    assert manifest.source["min_defect_pixels"] == 64
    with pytest.raises(
        DatasetError, match=r"^c: class 'class1' keeps 64 pixels at 16x16 \(256 before\); --min-defect-pixels is 65$"
    ):
        prepare("masks", tmp_path / "no", source_dir=src, size="16", min_defect_pixels=65)
    assert not (tmp_path / "no").exists()


def test_min_defect_pixels_must_be_positive(tiny_masks, tmp_path, runner):
    result = runner.invoke(
        app, ["prepare", "masks", "--source", str(tiny_masks), "--out", str(tmp_path / "o"), "--min-defect-pixels", "0"]
    )
    assert result.exit_code == 2 and "--min-defect-pixels must be at least 1, got 0" in result.output


def test_given_boxes_are_checked_too(tmp_path, caplog):
    """A source with its own boxes (COCO): a 1-px annotation's box is emptied by the resize."""
    root = tmp_path / "coco"
    (root / "imgs").mkdir(parents=True)
    cv2.imwrite(str(root / "imgs" / "p.png"), np.full((32, 32, 3), 90, np.uint8))
    annotations = [
        ann(1, "dent", rect=(5, 5, 6, 6), categories=["dent"]),
        ann(1, "dent", rect=(8, 8, 24, 24), categories=["dent"]),
    ]
    images = [{"id": 1, "file_name": "p.png", "width": 32, "height": 32}]
    (root / "instances.json").write_text(json.dumps(coco_file(images, annotations, ["dent"])))
    with caplog.at_level(logging.WARNING, logger="defectsynth"):
        manifest = prepare("coco", tmp_path / "o", annotations=root / "instances.json", images=root / "imgs", size="8")
    assert manifest.source["resize_loss"]["boxes_emptied"] == {"dent": 1}
    assert manifest.source["resize_loss"]["images_with_class_lost"] == {"dent": 0}
    assert "dent: 1 in p" in caplog.text
