"""Algorithm 1 of the VOC paper (class balancing plan), worked out by hand, and the plan file."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _handmade import class_sample
from _metrics_data import write_dataset

from defectsynth.balancing import (
    auto_n_balance,
    balance_generations,
    class_image_map,
    plan_balance,
    planned_samples,
    planned_size,
    read_plan,
)
from defectsynth.errors import DatasetError, OptionError

# The hand-made dataset D (classes 1 = a, 2 = b, 3 = c); i6 holds no defect.
D = {"i1": (1,), "i2": (1, 2), "i3": (2,), "i4": (1, 2, 3), "i5": (1,), "i6": ()}
# Stage 1 (lines 2-5), M in the order the images show the classes:
#   a: i1 i2 i4 i5    b: i2 i3 i4    c: i4
# Stage 2 (lines 7-8), fewest classes first, ties in dataset order:
#   a: i1(1) i5(1) i2(2) i4(3)    b: i3(1) i2(2) i4(3)    c: i4(3)
M_SORTED = {1: ["i1", "i5", "i2", "i4"], 2: ["i3", "i2", "i4"], 3: ["i4"]}
# Stage 3 (lines 10-18), n_balance = 5: a needs 1 (i1); b needs 2 (i3, i2); c needs 4 (i4 x4).
PLAN_5 = [("i1", 1), ("i3", 1), ("i2", 1), ("i4", 4)]
# n_balance = 7: a needs 3 (i1, i5, i2); b needs 4: one pass i3 i2 i4, then line 13 starts again
# at i3; c needs 6 (i4 x6). Repeats in order of first use: i1 1, i5 1, i2 2, i3 2, i4 7.
PLAN_7 = [("i1", 1), ("i5", 1), ("i2", 2), ("i3", 2), ("i4", 7)]


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    out = tmp_path_factory.mktemp("balance") / "real"
    return write_dataset(out, [class_sample(s, c) for s, c in D.items()], splits={"train": list(D), "val": ["i6"]})


def test_stages_1_and_2_sort_by_number_of_classes():
    assert class_image_map(D) == M_SORTED
    assert list(class_image_map(D)) == [1, 2, 3]


def test_stage_3_generations_by_hand():
    assert balance_generations(D, 5) == [(1, "i1"), (2, "i3"), (2, "i2"), (3, "i4"), (3, "i4"), (3, "i4"), (3, "i4")]
    assert balance_generations(D, 4) == [(2, "i3"), (3, "i4"), (3, "i4"), (3, "i4")]
    assert balance_generations(D, 1) == []


def test_plan_equals_the_hand_computed_one(real, tmp_path):
    for n, expected in ((5, PLAN_5), (7, PLAN_7)):
        path = tmp_path / f"plan{n}.json"
        plan = plan_balance(real, n, path)
        assert plan.plan == expected and plan.n_balance == n
        data = json.loads(path.read_text())
        assert data == {
            "format": 1,
            "dataset": str(real.resolve()),
            "split": "train",
            "n_balance": n,
            "plan": [{"stem": s, "repeats": k} for s, k in expected],
        }
        assert read_plan(path) == expected


def test_counts_before_and_after(real):
    plan = plan_balance(real, 5)
    np.testing.assert_array_equal(plan.before, [0, 4, 3, 1])
    # each generation holds its condition's classes: i1 +a; i3 +b; i2 +a+b; i4 x4 +a+b+c each
    np.testing.assert_array_equal(plan.after, [0, 4 + 1 + 1 + 4, 3 + 1 + 1 + 4, 1 + 4])
    report = plan.distribution()
    assert report["before"]["cir"]["per_class"] == {"scratch": 4, "spot": 3, "crack": 1}
    assert report["after"]["cir"]["all"] < report["before"]["cir"]["all"]
    assert report["after"]["entropy"]["all"] > report["before"]["entropy"]["all"]


def test_auto_picks_the_plan_closest_to_the_real_size(real):
    # |D| = 6; |D_gen|(4) = 0 + 1 + 3 = 4, |D_gen|(5) = 1 + 2 + 4 = 7: 5 is closer
    assert auto_n_balance(D) == 5
    assert [planned_size(D, n) for n in (1, 4, 5, 7)] == [0, 4, 7, 3 + 4 + 6]
    assert plan_balance(real, "auto").n_balance == 5
    assert auto_n_balance({"x": (1,), "y": (1,), "z": (2,)}) == 3  # |D| = 3: |D_gen|(2) = 0 + 1, (3) = 1 + 2 hits it
    assert (
        auto_n_balance({"x": (1,), "y": (2,), "z": ()}) == 2
    )  # |D_gen|(2) = 2, (3) = 4: both 1 from 3, the smaller wins


def test_split_all_and_unreachable_classes(real):
    plan = plan_balance(real, 2, split="val")  # i6 has no defect: nothing to balance from
    assert plan.plan == [] and plan.unreachable == [1, 2, 3]
    with pytest.raises(DatasetError, match="no image contains a defect class"):
        plan_balance(real, "auto", split="val")
    assert plan_balance(real, 5, split=None).plan == PLAN_5


def test_planned_samples_give_exactly_the_planned_counts():
    jobs = planned_samples(PLAN_7)
    assert len(jobs) == sum(k for _, k in PLAN_7) == 13
    assert jobs[:3] == [("i1-0", "i1"), ("i5-0", "i5"), ("i2-0", "i2")]
    assert len({stem for stem, _ in jobs}) == 13
    for stem, repeats in PLAN_7:
        assert sum(cond == stem for _, cond in jobs) == repeats


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"format": 1, "plan": [{"stem": "a", "repeats": 0}]}, "repeats must be a positive integer"),
        ({"format": 1, "plan": [{"stem": "../a", "repeats": 1}]}, "invalid stem"),
        ({"format": 1, "plan": [{"stem": "a", "repeats": 1}, {"stem": "a", "repeats": 2}]}, "listed twice"),
        ({"format": 2, "plan": []}, "format 2 is not supported"),
        ({"plan": {"a": 1}}, "not a balance plan"),
        ({"format": 1, "plan": [{"stem": "a"}]}, "plan entry 0 must be"),
    ],
)
def test_read_plan_rejects_bad_files(tmp_path, content, message):
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(content))
    with pytest.raises(DatasetError, match=message) as err:
        read_plan(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_bad_n_balance(real):
    with pytest.raises(OptionError, match="--n-balance"):
        plan_balance(real, "many")
    with pytest.raises(OptionError, match="--n-balance"):
        plan_balance(real, -3)
