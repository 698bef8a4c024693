"""Analog bits round trips and boxes from masks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from defectsynth.data.model import Box
from defectsynth.encoding import (
    boxes_from_mask,
    decode_bits,
    decode_bits_torch,
    encode_bits,
    encode_bits_torch,
    num_bits,
)


@pytest.mark.parametrize("num_classes", range(2, 257))
def test_bits_round_trip_every_class_count(num_classes):
    ids = np.arange(num_classes, dtype=np.uint8)
    bits = encode_bits(ids, num_classes)
    assert bits.shape == (num_classes, math.ceil(math.log2(num_classes))) and bits.dtype == np.float32
    assert set(np.unique(bits).tolist()) <= {-1.0, 1.0}
    decoded, invalid = decode_bits(bits, num_classes)
    assert decoded.dtype == np.uint8 and np.array_equal(decoded, ids) and invalid == 0


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 256), st.integers(0, 2**31 - 1))
def test_noisy_bits_decode_by_sign(num_classes, seed):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, num_classes, size=(5, 7))
    bits = encode_bits(ids, num_classes)
    noisy = bits * rng.uniform(0.01, 3.0, size=bits.shape).astype(np.float32)  # same signs, any magnitude
    decoded, invalid = decode_bits_torch(torch.from_numpy(noisy), num_classes)
    assert np.array_equal(decoded.numpy(), ids) and invalid == 0


def test_bits_are_most_significant_first():
    assert (
        num_bits(1) == num_bits(2) == 1 and num_bits(3) == num_bits(4) == 2 and num_bits(5) == 3 and num_bits(256) == 8
    )
    assert encode_bits(np.array(1), 4).tolist() == [-1, 1]
    assert encode_bits(np.array(4), 5).tolist() == [1, -1, -1]
    assert encode_bits_torch(torch.tensor([[2]]), 3).tolist() == [[[1.0, -1.0]]]


def test_codes_naming_no_class_become_background_and_are_counted():
    bits = np.array([[1.0, 1.0], [1.0, -1.0], [-0.2, 0.7], [0.3, 0.9]], np.float32)  # codes 3, 2, 1, 3
    decoded, invalid = decode_bits(bits, 3)
    assert decoded.tolist() == [0, 2, 1, 0] and invalid == 2


@pytest.mark.parametrize("num_classes", [0, 257])
def test_bad_class_counts(num_classes):
    with pytest.raises(ValueError, match="num_classes"):
        num_bits(num_classes)


def test_boxes_from_mask_components():
    mask = np.zeros((8, 10), np.uint8)
    mask[1:3, 1:4] = 1  # one component of class 1 ...
    mask[3, 4] = 1  # ... joined diagonally (8-connected)
    mask[6, 8] = 1  # a 1-pixel component of class 1
    mask[5:8, 0:2] = 2
    mask[0, 9] = 255  # ignore never forms a box
    assert boxes_from_mask(mask) == [Box(1, 1, 1, 5, 4), Box(1, 8, 6, 9, 7), Box(2, 0, 5, 2, 8)]
    assert boxes_from_mask(mask, min_area=2) == [Box(1, 1, 1, 5, 4), Box(2, 0, 5, 2, 8)]
    assert boxes_from_mask(mask, connectivity=4)[:2] == [Box(1, 1, 1, 4, 3), Box(1, 4, 3, 5, 4)]


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_boxes_from_mask_are_tight_and_cover_every_labelled_pixel(seed):
    mask = np.random.default_rng(seed).choice([0, 0, 0, 1, 2, 255], size=(9, 11)).astype(np.uint8)
    boxes = boxes_from_mask(mask)
    covered = np.zeros_like(mask, dtype=bool)
    for box in boxes:
        region = mask[box.y_min : box.y_max, box.x_min : box.x_max] == box.cls
        assert region[0].any() and region[-1].any() and region[:, 0].any() and region[:, -1].any()
        covered[box.y_min : box.y_max, box.x_min : box.x_max] |= (
            mask[box.y_min : box.y_max, box.x_min : box.x_max] == box.cls
        )
    assert np.array_equal(covered, (mask != 0) & (mask != 255))
