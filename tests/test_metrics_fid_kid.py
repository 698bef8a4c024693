"""FID / KID maths (torchmetrics on precomputed features) against a direct numpy/scipy computation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from defectsynth.errors import OptionError
from defectsynth.metrics.compute import parse_features, parse_names, parse_nets
from defectsynth.metrics.fid_kid import batches_of_equal_size, fid_from_features, kid_from_features


def _features(seed, n=40, d=8, shift=0.0):
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d))
    return rng.normal(size=(n, d)) @ mix + shift


def _fid_numpy(a, b):
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(s_a @ s_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a + s_b - 2 * root))


def _mmd_numpy(a, b):
    d = a.shape[1]
    k = lambda x, y: (x @ y.T / d + 1) ** 3  # noqa: E731
    m = len(a)
    kxx, kyy, kxy = k(a, a), k(b, b), k(a, b)
    return float((kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.sum() / m**2)


def test_fid_matches_scipy():
    a, b = _features(0), _features(1, shift=0.7)
    got = fid_from_features(torch.from_numpy(a), torch.from_numpy(b))
    assert got == pytest.approx(_fid_numpy(a, b), rel=1e-6)
    assert fid_from_features(torch.from_numpy(a), torch.from_numpy(a)) == pytest.approx(0.0, abs=1e-6)


def test_kid_matches_numpy_on_full_subsets_and_is_seeded():
    a, b = _features(2, n=30), _features(3, n=30, shift=0.5)
    mean, std, size = kid_from_features(torch.from_numpy(a), torch.from_numpy(b), subsets=4, subset_size=1000)
    assert size == 30  # capped at the smaller set; every subset is the whole set, reordered
    assert mean == pytest.approx(_mmd_numpy(a, b), rel=1e-9) and std == pytest.approx(0.0, abs=1e-9)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    one = kid_from_features(ta, tb, subsets=10, subset_size=10, seed=5)
    assert one == kid_from_features(ta, tb, subsets=10, subset_size=10, seed=5)
    assert one != kid_from_features(ta, tb, subsets=10, subset_size=10, seed=6)
    state = torch.random.get_rng_state()
    kid_from_features(ta, tb, subsets=3, subset_size=10)
    assert torch.equal(state, torch.random.get_rng_state())  # the global generator is left alone


def test_batches_never_mix_sizes():
    items = [1, 1, 1, 2, 2, 1]
    assert list(batches_of_equal_size(items, 2, lambda x: x)) == [[1, 1], [1], [2, 2], [1]]


def test_option_parsing():
    assert parse_features("64, 2048,64") == [64, 2048]
    assert parse_nets(["alex", "SQUEEZE"]) == ["alex", "squeeze"]
    assert parse_names(["sae,ebr", "fid"]) == ["sae", "ebr", "fid"]
    with pytest.raises(OptionError, match="--features: '100'"):
        parse_features("64,100")
    with pytest.raises(OptionError, match="unknown backbone 'resnet'"):
        parse_nets("resnet")
    with pytest.raises(OptionError, match="unknown metric 'miou'"):
        parse_names(["miou"])
