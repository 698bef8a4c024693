"""SAE / EBR against hand-computed cases and a per-pixel brute force of the paper's definitions."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _metrics_data import write_dataset

from defectsynth.cli import app
from defectsynth.data import Box, Sample
from defectsynth.errors import DatasetError
from defectsynth.metrics import compute_metrics, sae_ebr_counts
from defectsynth.metrics.sae_ebr import SaeEbrCounts


def _overlap_case():
    """10x10, classes 1..3: box of class 1 [0,0,5,5] overlaps box of class 2 [3,3,8,8]; class 3 box [0,8,2,10]."""
    mask = np.zeros((10, 10), np.uint8)
    mask[4, 4] = 1  # in both boxes: aligned (a class-1 box holds it)
    mask[1, 1] = 2  # only in the class-1 box: misaligned for class 2
    mask[6, 6] = 2  # in the class-2 box: aligned
    mask[7, 7] = 1  # only in the class-2 box: misaligned for class 1
    mask[9, 9] = 255  # ignore: never a generated defect pixel
    mask[9, 0] = 255  # ignore inside the class-3 box: does not fill it
    xyxy = np.array([[0, 0, 5, 5], [3, 3, 8, 8], [0, 8, 2, 10]])
    classes = np.array([1, 2, 3])
    return mask, xyxy, classes


def test_overlapping_boxes_of_different_classes_and_a_class_without_pixels():
    counts = sae_ebr_counts(*_overlap_case(), num_classes=4)
    assert counts.generated.tolist() == [0, 2, 2, 0]
    assert counts.misaligned.tolist() == [0, 1, 1, 0]
    assert counts.boxes.tolist() == [0, 1, 1, 1]
    assert counts.empty.tolist() == [0, 0, 0, 1]
    sae, sae_all = counts.sae()
    ebr, ebr_all = counts.ebr()
    assert np.isnan(sae[3]) and sae[1] == sae[2] == 0.5 and sae_all == 0.5
    assert ebr.tolist()[1:] == [0.0, 0.0, 1.0] and ebr_all == pytest.approx(1 / 3)


def test_image_without_boxes_misaligns_every_pixel_and_has_no_boxes():
    mask = np.zeros((6, 6), np.uint8)
    mask[0, :3] = 2
    counts = sae_ebr_counts(mask, np.zeros((0, 4)), np.zeros(0), num_classes=3)
    assert counts.misaligned.tolist() == [0, 0, 3] and counts.boxes.sum() == 0
    assert counts.ebr()[1] is None and counts.sae()[1] == 1.0


def test_half_open_box_and_same_class_boxes_count_once_each():
    mask = np.zeros((6, 6), np.uint8)
    mask[2, 2] = 1  # just outside the half-open box [0, 0, 2, 2]
    mask[4, 4] = 1
    xyxy = np.array([[0, 0, 2, 2], [3, 3, 6, 6], [4, 4, 5, 5]])
    counts = sae_ebr_counts(mask, xyxy, np.array([1, 1, 1]), num_classes=2)
    assert counts.misaligned[1] == 1 and counts.generated[1] == 2
    assert counts.boxes[1] == 3 and counts.empty[1] == 1  # the third box holds (4, 4) too: not empty


def test_counts_add_up_across_images():
    a = sae_ebr_counts(*_overlap_case(), num_classes=4)
    b = sae_ebr_counts(np.full((4, 4), 3, np.uint8), np.array([[0, 0, 2, 2]]), np.array([3]), num_classes=4)
    total = a + b
    assert total.generated.tolist() == [0, 2, 2, 16] and total.misaligned.tolist() == [0, 1, 1, 12]
    assert total.boxes.tolist() == [0, 1, 1, 2] and total.empty.tolist() == [0, 0, 0, 1]
    assert total.sae()[1] == pytest.approx(14 / 20)


def _brute_force(mask, xyxy, classes, num_classes):
    counts = SaeEbrCounts.zeros(num_classes)
    for (y, x), value in np.ndenumerate(mask):
        if value in (0, 255):
            continue
        counts.generated[value] += 1
        inside = any(c == value and x0 <= x < x1 and y0 <= y < y1 for (x0, y0, x1, y1), c in zip(xyxy, classes))
        counts.misaligned[value] += not inside
    for (x0, y0, x1, y1), c in zip(xyxy, classes):
        counts.boxes[c] += 1
        counts.empty[c] += not (mask[y0:y1, x0:x1] == c).any()
    return counts


@pytest.mark.parametrize("seed", range(8))
def test_matches_a_per_pixel_brute_force(seed):
    rng = np.random.default_rng(seed)
    h, w, num_classes = 13, 17, 4
    mask = rng.choice(np.array([0, 0, 0, 1, 2, 3, 255], np.uint8), size=(h, w))
    n = int(rng.integers(0, 6))
    x0, y0 = rng.integers(0, w - 1, n), rng.integers(0, h - 1, n)
    xyxy = (
        np.stack([x0, y0, x0 + rng.integers(1, w - x0 + 1), y0 + rng.integers(1, h - y0 + 1)], 1)
        if n
        else np.zeros((0, 4), int)
    )
    classes = rng.integers(1, num_classes, n)
    got, want = sae_ebr_counts(mask, xyxy, classes, num_classes), _brute_force(mask, xyxy, classes, num_classes)
    for field in ("generated", "misaligned", "boxes", "empty"):
        assert getattr(got, field).tolist() == getattr(want, field).tolist(), field


def test_bad_arrays_are_refused():
    with pytest.raises(ValueError, match="num_classes"):
        sae_ebr_counts(np.full((2, 2), 5, np.uint8), np.zeros((0, 4)), np.zeros(0), num_classes=4)
    with pytest.raises(ValueError, match="box classes"):
        sae_ebr_counts(np.zeros((2, 2), np.uint8), np.array([[0, 0, 1, 1]]), np.array([0]), num_classes=4)


def _synthetic_folder(tmp_path):
    mask, xyxy, classes = _overlap_case()
    image = np.zeros((10, 10, 3), np.uint8)
    boxes = [Box(int(c), *map(int, b)) for b, c in zip(xyxy, classes)]
    no_boxes = np.zeros((10, 10), np.uint8)
    no_boxes[0, 0:2] = 1
    samples = [Sample("a", image, mask, boxes), Sample("b", image, no_boxes, [])]
    return write_dataset(tmp_path / "synth", samples, synthetic=True)


def test_compute_metrics_on_a_dataset_folder(tmp_path):
    result = compute_metrics(["sae", "ebr"], synthetic=_synthetic_folder(tmp_path))
    assert list(result) == ["sae", "ebr"]
    assert result["sae"]["per_class"] == {"scratch": 3 / 4, "spot": 0.5, "crack": None}
    assert result["sae"]["all"] == pytest.approx(4 / 6)
    assert result["sae"]["counts"]["scratch"] == {"misaligned": 3, "generated": 4}
    assert result["ebr"]["per_class"] == {"scratch": 0.0, "spot": 0.0, "crack": 1.0}
    assert result["ebr"]["all"] == pytest.approx(1 / 3)


def test_cli_writes_json_and_tables(tmp_path, runner):
    out = tmp_path / "m.json"
    res = runner.invoke(
        app,
        ["metrics", "sae", "ebr", "--synthetic", str(_synthetic_folder(tmp_path)), "--json", str(out), "--no-progress"],
    )
    assert res.exit_code == 0, res.output
    assert "75.00%" in res.output and "33.33%" in res.output  # percentages in the tables
    saved = json.loads(out.read_text())
    assert saved["sae"]["per_class"]["scratch"] == 0.75 and saved["ebr"]["per_class"]["crack"] == 1.0


def test_dataset_without_masks_is_refused(tmp_path):
    image = np.zeros((8, 8, 3), np.uint8)
    folder = write_dataset(tmp_path / "nomask", [Sample("a", image, None, [Box(1, 0, 0, 2, 2)])])
    with pytest.raises(DatasetError, match="no masks"):
        compute_metrics(["sae"], synthetic=folder)


def test_toy_dataset_is_perfectly_aligned(toy_dataset):
    result = compute_metrics(["sae", "ebr"], synthetic=toy_dataset, split="train")
    assert result["sae"]["all"] == 0.0 and result["ebr"]["all"] == 0.0
    assert sum(c["boxes"] for c in result["ebr"]["counts"].values()) > 0
