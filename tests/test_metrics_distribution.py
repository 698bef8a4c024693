"""Entropy and CIR (Gini) of the class distribution, on arrays and on dataset folders."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _metrics_data import write_dataset

from defectsynth.data import Box, Sample
from defectsynth.errors import DatasetError, OptionError
from defectsynth.metrics import compute_metrics, entropy_bits, gini


def test_entropy_in_bits():
    assert entropy_bits(np.array([5, 5, 5, 5])) == pytest.approx(2.0)
    assert entropy_bits(np.array([7, 0, 0])) == 0.0
    assert entropy_bits(np.array([1, 3])) == pytest.approx(-(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75)))
    assert entropy_bits(np.array([0, 0])) is None


def test_gini_is_zero_when_balanced_and_grows_with_imbalance():
    assert gini(np.array([4, 4, 4])) == 0.0
    assert gini(np.array([9, 0, 0])) == pytest.approx(2 / 3)  # (K-1)/K
    # |1-3| + |1-5| + |3-5| = 8, counted twice = 16; 2 * K^2 * mean = 2 * 9 * 3 = 54
    assert gini(np.array([1, 3, 5])) == pytest.approx(16 / 54)
    assert gini(np.array([0, 0])) is None


def _sample(stem, mask_classes=(), box_classes=()):
    mask = np.zeros((8, 8), np.uint8)
    for k, c in enumerate(mask_classes):
        mask[k, 0] = c
    mask[7, 7] = 255
    return Sample(stem, np.zeros((8, 8, 3), np.uint8), mask, [Box(c, 0, 4, 2, 6) for c in box_classes])


def test_real_synthetic_and_combined(tmp_path):
    # real: scratch in 2 images (one by box only, one twice in the same image), spot in 1, crack in 0
    real = write_dataset(
        tmp_path / "real",
        [_sample("r0", (1, 1)), _sample("r1", (), (1,)), _sample("r2", (2,)), _sample("r3")],
        splits={"train": ["r0", "r1", "r2"], "val": ["r3"]},
    )
    synth = write_dataset(tmp_path / "synth", [_sample("s0", (3,)), _sample("s1", (2, 3))], synthetic=True)
    result = compute_metrics(["entropy", "cir"], synthetic=synth, real=real, split="train")
    cir = result["cir"]
    assert cir["real"]["per_class"] == {"scratch": 2, "spot": 1, "crack": 0}
    assert cir["synthetic"]["per_class"] == {"scratch": 0, "spot": 1, "crack": 2}
    assert cir["combined"]["per_class"] == {"scratch": 2, "spot": 2, "crack": 2}
    assert cir["combined"]["all"] == 0.0 and cir["real"]["all"] == pytest.approx(gini(np.array([2, 1, 0])))
    assert result["entropy"]["combined"]["all"] == pytest.approx(math.log2(3))
    assert result["entropy"]["real"]["per_class"] == {"scratch": 2 / 3, "spot": 1 / 3, "crack": 0.0}


def test_single_dataset_and_split(tmp_path):
    real = write_dataset(tmp_path / "real", [_sample("r0", (1,)), _sample("r1", (2,))], splits={"val": ["r1"]})
    result = compute_metrics(["entropy"], real=real, split="val")
    assert list(result["entropy"]) == ["real"] and result["entropy"]["real"]["all"] == 0.0
    empty = compute_metrics(["cir"], synthetic=write_dataset(tmp_path / "s", [_sample("s0")]))
    assert empty["cir"]["synthetic"]["all"] is None


def test_different_classes_cannot_be_combined(tmp_path):
    real = write_dataset(tmp_path / "real", [_sample("r0", (1,))])
    other = write_dataset(tmp_path / "other", [_sample("o0", (1,))], classes=["dent", "spot", "crack"])
    with pytest.raises(DatasetError, match="differ from"):
        compute_metrics(["entropy"], synthetic=other, real=real)


def test_needs_a_dataset():
    with pytest.raises(OptionError, match="needs --synthetic or --real"):
        compute_metrics(["cir"])
