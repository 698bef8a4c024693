"""BASD / C-BASD / boxmask maps against the literal reference, hand-computed values, and wrong variants."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, find, given, settings
from hypothesis import strategies as st

from defectsynth.encoding import (
    basd_maps,
    basd_maps_torch,
    boxmask_maps,
    boxmask_maps_torch,
    condition_channels,
    decode_bits,
)
from defectsynth.encoding import boxes as boxes_module
from defectsynth.encoding.reference import reference_basd, reference_boxmask


@st.composite
def box_cases(draw, max_side: int = 10, max_boxes: int = 6):
    """(boxes, classes, height, width): random valid boxes, often overlapping, nested, at the border,
    1 pixel wide, or duplicated with another class (ties)."""
    height = draw(st.integers(1, max_side))
    width = draw(st.integers(1, max_side))
    boxes, classes = [], []
    for _ in range(draw(st.integers(0, max_boxes))):
        if boxes and draw(st.integers(0, 5)) == 0:
            boxes.append(list(draw(st.sampled_from(boxes))))  # an exact duplicate: a tie everywhere inside
        else:
            x0 = draw(st.integers(0, width - 1))
            y0 = draw(st.integers(0, height - 1))
            boxes.append([x0, y0, draw(st.integers(x0 + 1, width)), draw(st.integers(y0 + 1, height))])
        classes.append(draw(st.integers(1, 7)))
    return boxes, classes, height, width


def mismatch(fn, case, class_fill: str = "inside") -> str | None:
    """Why ``fn``'s maps differ from the literal reference on ``case``, or None when they agree."""
    boxes, classes, height, width = case
    basd, cbasd = fn(
        np.array(boxes, dtype=np.int64).reshape(-1, 4), np.array(classes, dtype=np.int64), height, width, class_fill
    )
    want_basd, want_cbasd = reference_basd(boxes, classes, height, width, class_fill)
    if basd.shape != (height, width) or basd.dtype != np.float32 or cbasd.dtype != np.uint8:
        return f"shape/dtype {basd.shape} {basd.dtype} {cbasd.dtype}"
    if not np.allclose(basd, want_basd, rtol=0, atol=1e-6):
        return f"basd differs by {np.abs(basd - want_basd).max()}"
    if not np.array_equal(cbasd, want_cbasd):
        return f"cbasd differs at {np.argwhere(cbasd != want_cbasd)[:3].tolist()}"
    return None


FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(box_cases(), st.sampled_from(["inside", "nearest"]))
@example(([], [], 4, 5), "inside")  # no boxes
@example(([[0, 0, 6, 5]], [3], 5, 6), "nearest")  # the whole image
@example(([[2, 2, 3, 3], [0, 0, 6, 6], [1, 1, 5, 5]], [1, 2, 3], 6, 6), "inside")  # nested, 1-pixel
@example(([[0, 0, 3, 3], [3, 0, 6, 3], [0, 3, 6, 4]], [1, 2, 3], 4, 6), "nearest")  # touching boxes and borders
@example(([[1, 1, 4, 4], [1, 1, 4, 4]], [5, 2], 5, 5), "nearest")  # duplicates: the first listed wins
def test_basd_matches_literal_reference(case, class_fill):
    assert mismatch(basd_maps, case, class_fill) is None


@FAST
@given(box_cases())
@example(([[0, 0, 4, 4], [1, 1, 3, 3], [2, 0, 4, 2]], [1, 2, 3], 4, 4))  # equal areas: listed later on top
def test_boxmask_matches_literal_reference(case):
    boxes, classes, height, width = case
    occupancy, class_map = boxmask_maps(np.array(boxes).reshape(-1, 4), np.array(classes), height, width)
    want_occupancy, want_class_map = reference_boxmask(boxes, classes, height, width)
    assert occupancy.dtype == np.float32 and class_map.dtype == np.uint8
    assert np.array_equal(occupancy, want_occupancy) and np.array_equal(class_map, want_class_map)


def test_hand_computed_values():
    # 6x6 image (diagonal 6 * sqrt 2); A = [0, 0, 3, 3] class 1, B = [2, 2, 5, 5] class 2.
    diagonal = 6 * math.sqrt(2)
    basd, cbasd = basd_maps(np.array([[0, 0, 3, 3], [2, 2, 5, 5]]), np.array([1, 2]), 6, 6)
    _, nearest = basd_maps(np.array([[0, 0, 3, 3], [2, 2, 5, 5]]), np.array([1, 2]), 6, 6, class_fill="nearest")
    expected = {  # (row, col): (distance in pixels, class inside / 0, nearest class)
        (1, 1): (1.5, 1, 1),  # centre of A
        (0, 0): (0.5, 1, 1),  # A's corner pixel
        (2, 2): (0.5, 1, 1),  # in A (0.5 to its corner edges) and in B (0.5): a tie, A is listed first
        (3, 3): (1.5, 2, 2),  # centre of B, outside A
        (2, 4): (0.5, 2, 2),  # in B only
        (5, 0): (-math.sqrt(2.5), 0, 2),  # below A (2.5 away), nearer to B's corner (1.5, 0.5)
        (5, 5): (-math.sqrt(0.5), 0, 2),  # diagonal from B's corner: Euclidean, not 0.5
        (0, 5): (-math.sqrt(2.5), 0, 2),  # 2.5 right of A, nearer to B's corner (0.5, 1.5)
        (4, 0): (-1.5, 0, 1),  # 1.5 below A and 1.5 left of B: a tie, A is listed first
    }
    for (i, j), (distance, inside_class, nearest_class) in expected.items():
        assert basd[i, j] == pytest.approx(distance / diagonal, abs=1e-7), (i, j)
        assert (cbasd[i, j], nearest[i, j]) == (inside_class, nearest_class), (i, j)


def test_no_boxes_is_minus_one_and_background():
    basd, cbasd = basd_maps(np.zeros((0, 4)), np.zeros(0), 3, 7)
    assert basd.shape == (3, 7) and (basd == -1).all() and (cbasd == 0).all()


def test_range_and_signs():
    basd, cbasd = basd_maps(np.array([[10, 20, 60, 30]]), np.array([4]), 64, 96)
    assert basd.min() >= -1 and basd.max() <= 1
    assert ((basd > 0) == (cbasd == 4)).all() and (basd[20:30, 10:60] > 0).all()


def _ties_to_last(xyxy, classes, height, width, class_fill):
    return basd_maps(xyxy[::-1], classes[::-1], height, width, class_fill)


def _overlap_keeps_largest(xyxy, classes, height, width, class_fill):
    maps = [basd_maps(xyxy[k : k + 1], classes[k : k + 1], height, width, class_fill) for k in range(len(xyxy))]
    basd, cbasd = basd_maps(xyxy, classes, height, width, class_fill)
    for one, cls in maps:
        larger = (one > 0) & (one > basd)
        basd, cbasd = np.where(larger, one, basd), np.where(larger, cls, cbasd)
    return basd, cbasd


def _other_fill(xyxy, classes, height, width, class_fill):
    return basd_maps(xyxy, classes, height, width, "nearest" if class_fill == "inside" else "inside")


def _pixel_corners(monkeypatch):
    def corners(xyxy, height, width):  # pixel (i, j) at (j, i): the classic off-by-half bug
        b, cx, cy = 2 * xyxy, 2 * torch.arange(width), 2 * torch.arange(height)
        return torch.minimum(cx - b[:, 0:1], b[:, 2:3] - cx), torch.minimum(cy - b[:, 1:2], b[:, 3:4] - cy)

    monkeypatch.setattr(boxes_module, "_axis_distances", corners)
    return basd_maps


@pytest.mark.slow
@pytest.mark.parametrize("wrong", ["ties_to_last", "overlap_keeps_largest", "other_fill", "pixel_corners"])
def test_property_check_catches_wrong_variants(wrong, monkeypatch):
    """The random cases and the comparison above are strong enough to expose each deliberate bug."""
    fn = {
        "ties_to_last": _ties_to_last,
        "overlap_keeps_largest": _overlap_keeps_largest,
        "other_fill": _other_fill,
        "pixel_corners": None,
    }[wrong] or _pixel_corners(monkeypatch)
    fill = "nearest" if wrong == "ties_to_last" else "inside"
    found = find(
        box_cases(),
        lambda case: mismatch(fn, case, fill) is not None,
        settings=settings(max_examples=400, database=None, deadline=None),  # a busy CPU is no failure
    )
    assert mismatch(fn, found, fill) is not None


@FAST
@given(box_cases(max_side=8, max_boxes=4), st.sampled_from(["inside", "nearest"]))
def test_torch_variant_takes_tensors_and_matches(case, class_fill):
    boxes, classes, height, width = case
    xyxy = torch.tensor(boxes, dtype=torch.int32).reshape(-1, 4)
    basd, cbasd = basd_maps_torch(xyxy, torch.tensor(classes, dtype=torch.int64), height, width, class_fill)
    want_basd, want_cbasd = basd_maps(np.array(boxes).reshape(-1, 4), np.array(classes), height, width, class_fill)
    assert basd.dtype == torch.float32 and cbasd.dtype == torch.uint8
    assert np.array_equal(basd.numpy(), want_basd) and np.array_equal(cbasd.numpy(), want_cbasd)
    occupancy, class_map = boxmask_maps_torch(xyxy, torch.tensor(classes), height, width)
    want_occupancy, want_class_map = boxmask_maps(np.array(boxes).reshape(-1, 4), np.array(classes), height, width)
    assert np.array_equal(occupancy.numpy(), want_occupancy) and np.array_equal(class_map.numpy(), want_class_map)


def test_chunking_over_boxes_gives_the_same_maps(monkeypatch):
    rng = np.random.default_rng(1)
    x0, y0 = rng.integers(0, 40, 12), rng.integers(0, 30, 12)
    xyxy = np.stack([x0, y0, x0 + rng.integers(1, 9, 12), y0 + rng.integers(1, 9, 12)], 1)
    classes = rng.integers(1, 4, 12)
    whole = basd_maps(xyxy, classes, 38, 48, "nearest") + boxmask_maps(xyxy, classes, 38, 48)
    monkeypatch.setattr(boxes_module, "_CHUNK_ELEMENTS", 3 * 38 * 48)  # 3 boxes per chunk
    chunked = basd_maps(xyxy, classes, 38, 48, "nearest") + boxmask_maps(xyxy, classes, 38, 48)
    assert all(np.array_equal(a, b) for a, b in zip(whole, chunked))


def test_large_image_stays_exact():
    xyxy, classes = np.array([[0, 0, 1, 1], [1500, 2500, 1501, 2501]]), np.array([1, 2])
    basd, cbasd = basd_maps(xyxy, classes, 2501, 1501, "nearest")
    diagonal = math.hypot(2501, 1501)
    assert basd[1250, 750] == pytest.approx(-math.hypot(749.5, 1249.5) / diagonal, rel=1e-6)
    assert basd[2500, 1500] == pytest.approx(0.5 / diagonal) and cbasd[2500, 1500] == 2 and cbasd[0, 0] == 1


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64])
def test_wider_key_types_give_the_same_maps(dtype, monkeypatch):
    """Keys are int16 where they fit; int32 and int64 (large images, many boxes) must agree."""
    rng = np.random.default_rng(2)
    cases = []
    for _ in range(20):
        x0, y0 = rng.integers(0, 30, 7), rng.integers(0, 20, 7)
        cases.append(
            (np.stack([x0, y0, x0 + rng.integers(1, 10, 7), y0 + rng.integers(1, 10, 7)], 1), rng.integers(1, 9, 7))
        )
    narrow = [basd_maps(b, c, 29, 39, "nearest") + boxmask_maps(b, c, 29, 39) for b, c in cases]
    monkeypatch.setattr(boxes_module, "_key_dtype", lambda largest: dtype)
    wide = [basd_maps(b, c, 29, 39, "nearest") + boxmask_maps(b, c, 29, 39) for b, c in cases]
    assert all(np.array_equal(a, b) for n, w in zip(narrow, wide) for a, b in zip(n, w))
    assert boxes_module._key_dtype(1) == dtype  # the patch took effect


def test_key_dtype_is_the_narrowest_that_fits():
    assert boxes_module._key_dtype(2**15 - 1) == torch.int16 and boxes_module._key_dtype(2**15) == torch.int32
    assert boxes_module._key_dtype(2**31 - 1) == torch.int32 and boxes_module._key_dtype(2**31) == torch.int64


@pytest.mark.parametrize(
    "xyxy",
    [[[2, 2, 2, 5]], [[3, 1, 1, 4]], [[0, 0, 9, 4]], [[-1, 0, 2, 2]]],
    ids=["empty", "inverted", "too-wide", "negative"],
)
def test_invalid_boxes_are_a_callers_bug(xyxy):
    with pytest.raises(ValueError, match="non-empty and inside"):
        basd_maps(np.array(xyxy), np.array([1]), 5, 8)


@pytest.mark.parametrize("cond", ["basd", "boxmask"])
def test_condition_channels(cond):
    xyxy, classes = np.array([[1, 1, 6, 4], [3, 2, 8, 7]]), np.array([5, 2])
    channels = condition_channels(xyxy, classes, 8, 9, num_classes=6, cond=cond)
    assert channels.shape == (1 + 3, 8, 9) and channels.dtype == torch.float32
    first, class_map = basd_maps(xyxy, classes, 8, 9) if cond == "basd" else boxmask_maps(xyxy, classes, 8, 9)
    assert np.array_equal(channels[0].numpy(), first)
    decoded, invalid = decode_bits(channels[1:].movedim(0, -1).numpy(), 6)
    assert invalid == 0 and np.array_equal(decoded, class_map)
    with pytest.raises(ValueError, match="cond"):
        condition_channels(xyxy, classes, 8, 9, num_classes=6, cond="mask")
