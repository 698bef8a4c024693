from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from defectsynth.metrics.segmentation import get_stats, image_scores, reduce_stats


def _pair():
    # image 0: 2x3, classes 0/1/2, one ignored pixel; image 1: all background, one false positive
    target = torch.tensor([[[0, 1, 1], [2, 255, 0]], [[0, 0, 0], [0, 0, 0]]])
    pred = torch.tensor([[[0, 1, 0], [2, 2, 1]], [[0, 0, 0], [0, 1, 0]]])
    return pred, target


def test_get_stats_matches_hand_counts():
    tp, fp, fn, tn = get_stats(*_pair(), num_classes=3)
    # image 0 (5 valid pixels): class0 tp1 fp1 fn1; class1 tp1 fp1 fn1; class2 tp1 fp0 fn0
    assert tp.tolist() == [[1, 1, 1], [5, 0, 0]]
    assert fp.tolist() == [[1, 1, 0], [0, 1, 0]]
    assert fn.tolist() == [[1, 1, 0], [1, 0, 0]]
    assert tn.tolist() == [[2, 2, 4], [0, 5, 6]]
    assert ((tp + fp + fn + tn).sum(1) == torch.tensor([5 * 3, 6 * 3])).all()


def test_reductions_match_hand_computation():
    scores = reduce_stats(*get_stats(*_pair(), num_classes=3))
    iou, f1 = scores["iou"], scores["f1"]
    # pooled per class: c0 tp6 fp1 fn2, c1 tp1 fp2 fn1, c2 tp1 fp0 fn0
    assert iou["per_class"] == pytest.approx([6 / 9, 1 / 4, 1.0])
    assert f1["per_class"] == pytest.approx([12 / 15, 2 / 5, 1.0])
    # per image: img0 c0 1/3 c1 1/3 c2 1; img1 c0 5/6 c1 0/1=0 c2 absent -> zero_division 1
    assert iou["per_class_imagewise"] == pytest.approx([(1 / 3 + 5 / 6) / 2, (1 / 3 + 0) / 2, 1.0])
    assert iou["macro_imagewise"] == pytest.approx(np.mean([(1 / 3 + 5 / 6) / 2, 1 / 6, 1.0]))
    assert iou["macro"] == pytest.approx(np.mean([6 / 9, 1 / 4, 1.0]))
    assert iou["micro"] == pytest.approx(8 / (8 + 3 + 3))
    assert f1["micro"] == pytest.approx(16 / (16 + 3 + 3))


def test_reduction_over_chosen_classes_and_zero_division():
    stats = get_stats(*_pair(), num_classes=3)
    defects = reduce_stats(*stats, classes=[1, 2])
    assert defects["f1"]["macro"] == pytest.approx((2 / 5 + 1.0) / 2)
    assert defects["iou"]["micro"] == pytest.approx(2 / (2 + 2 + 1))
    strict = reduce_stats(*stats, zero_division=0.0)
    assert strict["iou"]["per_class_imagewise"][2] == pytest.approx(0.5)


def test_agrees_with_smp():
    import segmentation_models_pytorch as smp

    gen = torch.Generator().manual_seed(0)
    pred = torch.randint(0, 4, (5, 8, 8), generator=gen)
    target = torch.randint(0, 4, (5, 8, 8), generator=gen)
    ours = get_stats(pred, target, num_classes=4)
    theirs = smp.metrics.get_stats(pred, target, mode="multiclass", num_classes=4)
    for a, b in zip(ours, theirs):
        assert torch.equal(a, b.long())
    scores = reduce_stats(*ours)
    for reduction, key in (("micro", "micro"), ("macro", "macro"), ("macro-imagewise", "macro_imagewise")):
        expected = smp.metrics.iou_score(*theirs, reduction=reduction, zero_division=1.0)
        assert scores["iou"][key] == pytest.approx(float(expected))


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 3), st.integers(2, 4), st.integers(0, 2**31 - 1))
def test_counts_partition_valid_pixels(n, classes, seed):
    rng = np.random.default_rng(seed)
    target = rng.integers(0, classes, size=(n, 5, 6))
    target[rng.random(target.shape) < 0.2] = 255
    pred = rng.integers(0, classes, size=(n, 5, 6))
    tp, fp, fn, tn = get_stats(torch.from_numpy(pred), torch.from_numpy(target), num_classes=classes)
    valid = (target != 255).reshape(n, -1).sum(1)
    assert (tp + fp + fn + tn == torch.from_numpy(valid)[:, None]).all()
    assert (tp.sum(1) + fn.sum(1) == torch.from_numpy(valid)).all()


def test_rejects_bad_shapes_and_ids():
    with pytest.raises(ValueError):
        get_stats(torch.zeros(2, 3, 3), torch.zeros(2, 3, 4), num_classes=2)
    with pytest.raises(ValueError):
        get_stats(torch.full((1, 2, 2), 2), torch.zeros(1, 2, 2), num_classes=2)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 4), st.integers(2, 4), st.integers(0, 2**31 - 1))
def test_image_scores_are_the_terms_of_macro_imagewise(n, classes, seed):
    """filter --by segmenter ranks by image_scores; evaluate reports their mean: one convention."""
    rng = np.random.default_rng(seed)
    target = rng.integers(0, classes, size=(n, 4, 5))
    pred = rng.integers(0, classes, size=(n, 4, 5))
    stats = get_stats(torch.from_numpy(pred), torch.from_numpy(target), num_classes=classes)
    chosen = list(range(1, classes))
    for score in ("iou", "f1"):
        per_image = image_scores(*stats[:3], score=score, classes=chosen)
        assert per_image.shape == (n,)
        assert float(per_image.mean()) == pytest.approx(reduce_stats(*stats, classes=chosen)[score]["macro_imagewise"])


def test_image_scores_count_an_absent_class_as_one():
    target = torch.tensor([[[0, 0], [1, 1]]])
    pred = torch.tensor([[[0, 0], [0, 1]]])
    tp, fp, fn, _ = get_stats(pred, target, num_classes=3)
    assert image_scores(tp, fp, fn).tolist() == pytest.approx([(2 / 3 + 1 / 2 + 1) / 3])
