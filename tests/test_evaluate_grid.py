from __future__ import annotations

import pytest

from defectsynth.errors import OptionError
from defectsynth.evaluation.grid import DEFAULT_MIXES, Mix, build_cells, holdout, parse_mix, parse_mixes, seeded_order


def test_default_grid_is_baseline_plus_the_thesis_seven():
    mixes = parse_mixes(None)
    assert [m.text for m in mixes] == list(DEFAULT_MIXES)
    assert len(mixes) == 8 and mixes[0].is_baseline and sum(m.is_baseline for m in mixes) == 1
    # thesis section 7.1.2 with 128 real pairs and 1000 synthetic ones
    assert [m.counts(128, 1000) for m in mixes] == [
        (128, 0),
        (0, 1000),
        (0, 128),
        (128, 128),
        (128, 100),
        (128, 400),
        (128, 700),
        (128, 1000),
    ]


@pytest.mark.parametrize(
    "text, real, synthetic",
    [
        ("R=all,S=0", "all", "0"),
        (" R = ALL , S = 100 ", "all", "100"),
        ("R=0,S=R", "0", "R"),
        ("R=50%,S=040", "50%", "40"),
    ],
)
def test_parse_mix(text, real, synthetic):
    assert parse_mix(text) == Mix(real, synthetic)


@pytest.mark.parametrize(
    "text", ["R=all", "S=1,R=2,S=3", "R=R,S=0", "R=0,S=0", "R=all,S=-1", "R=all,S=150%", "X=1,S=2", "R=all;S=0"]
)
def test_bad_mix_is_one_line_option_error(text):
    with pytest.raises(OptionError) as err:
        parse_mix(text)
    assert "--mix" in str(err.value) and "\n" not in str(err.value)


def test_counts_shares_and_too_many():
    assert parse_mix("R=50%,S=40%").counts(10, 25) == (5, 10)
    with pytest.raises(OptionError, match="only 20 exist"):
        parse_mix("R=all,S=100").counts(10, 20)
    with pytest.raises(OptionError, match="only 10 exist"):
        parse_mix("R=20,S=0").counts(10, 0)


def test_subsets_are_nested_and_seeded():
    stems = [f"s{i:03d}" for i in range(50)]
    order = seeded_order(stems, seed=3, salt="synthetic:a")
    assert sorted(order) == stems and order != stems
    assert order == seeded_order(list(reversed(stems)), seed=3, salt="synthetic:a")  # input order does not matter
    assert order != seeded_order(stems, seed=4, salt="synthetic:a")
    assert order != seeded_order(stems, seed=3, salt="synthetic:b")
    small, large = set(order[:10]), set(order[:40])
    assert small < large


def test_holdout_is_disjoint_seeded_and_twenty_percent():
    stems = [f"img{i}" for i in range(40)]
    train, val = holdout(stems, 0.2, seed=1)
    assert len(val) == 8 and not set(train) & set(val) and sorted(train + val) == sorted(stems)
    assert (train, val) == holdout(stems, 0.2, seed=1)
    assert val != holdout(stems, 0.2, seed=2)[1]
    assert len(holdout(["a", "b"], 0.2, seed=0)[1]) == 1
    with pytest.raises(OptionError):
        holdout(["a"], 0.2, seed=0)


def test_cells_baseline_once_per_model_and_binary_classes():
    mixes = parse_mixes(["R=all,S=0", "R=all,S=R"])
    cells = build_cells(["fpn", "unet"], mixes, ["a", "b"], repeats=2)
    assert len(cells) == 2 * (1 + 2) * 2
    assert {c.synthetic for c in cells if c.mix.is_baseline} == {None}
    assert len({c.key for c in cells}) == len(cells)
    binary = build_cells(["fpn"], mixes, ["a"], repeats=1, binary_classes=[1, 2, 3])
    assert len(binary) == 2 * 3 and {c.binary_class for c in binary} == {1, 2, 3}
    assert binary[0].key == "fpn__R-all_S-0__real__r0__c1"
