"""``merge_datasets``: every file kept, splits and provenance, balanced selection by hand, stem clashes."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from _handmade import class_sample
from _metrics_data import write_dataset

from defectsynth.balancing import merge_datasets, select_balanced
from defectsynth.data import Dataset
from defectsynth.errors import DatasetError

REAL = {"i1": (1,), "i2": (1, 2), "i3": (2,), "i4": (1, 2, 3), "i5": (1,), "i6": ()}
SYN = {"s_a1": (1,), "s_a2": (1,), "s_abc": (1, 2, 3), "s_b1": (2,), "s_bc": (2, 3), "s_c1": (3,), "s_c2": (3,)}


def _digest(root):
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    base = tmp_path_factory.mktemp("merge")
    real = write_dataset(
        base / "real",
        [class_sample(s, c) for s, c in REAL.items()],
        splits={"train": ["i1", "i2", "i3", "i4", "i5"], "val": ["i6"]},
    )
    condition_of = {s: "i4" for s in SYN}
    syn = write_dataset(
        base / "syn",
        [class_sample(s, c) for s, c in SYN.items()],
        source={"condition_of": condition_of, "seed": 3},
        synthetic=True,
    )
    (syn / "conditions").mkdir()
    (syn / "conditions" / "s_bc.npz").write_bytes(b"cached maps")
    return real, syn


def test_selection_by_hand():
    # real train i1..i5: a in 4 images, b in 3, c in 1. Each step picks the sample whose classes
    # gain most (+1 per class below n, -1 per class at or above it), fewest classes, then pool order.
    train = {s: REAL[s] for s in ("i1", "i2", "i3", "i4", "i5")}
    # n=5: s_abc +3 (a5 b4 c2); s_bc +2 (b5 c3); s_c1 +1 (c4); s_c2 +1 (c5); then every gain <= 0.
    assert select_balanced(train, SYN, 5, 4) == (["s_abc", "s_bc", "s_c1", "s_c2"], {})
    # n=7: s_abc (a5 b4 c2), s_bc (b5 c3), then the one-class samples in pool order:
    # s_a1 s_a2 (a7) s_b1 (b6) s_c1 s_c2 (c5); the pool is empty: b is 1 short, c 2.
    assert select_balanced(train, SYN, 7, 4) == (
        ["s_abc", "s_bc", "s_a1", "s_a2", "s_b1", "s_c1", "s_c2"],
        {2: 1, 3: 2},
    )
    # n=3: a and b are there already; s_abc gains -1, s_bc 0: only the pure c samples help.
    assert select_balanced(train, SYN, 3, 4) == (["s_c1", "s_c2"], {})
    assert select_balanced(train, {}, 3, 4) == ([], {3: 2})


def test_merge_keeps_every_file_and_split(pair, tmp_path):
    real, syn = pair
    before = {real: _digest(real), syn: _digest(syn)}
    summary = merge_datasets(real, syn, tmp_path / "merged", split="train")
    merged = Dataset(tmp_path / "merged")
    assert merged.stems == sorted([*REAL, *SYN])
    for source in (Dataset(real), Dataset(syn)):
        for stem in source.stems:
            a, b = source.read(stem), merged.read(stem)
            np.testing.assert_array_equal(a.image, b.image)
            np.testing.assert_array_equal(a.mask, b.mask)
            assert a.boxes == b.boxes
    assert merged.split("train") == ["i1", "i2", "i3", "i4", "i5", *SYN]
    assert merged.split("val") == ["i6"] and merged.split("synthetic") == list(SYN)
    assert (tmp_path / "merged" / "conditions" / "s_bc.npz").read_bytes() == b"cached maps"
    source = merged.manifest.source
    assert source["condition_of"] == {s: "i4" for s in SYN}
    assert source["merged"]["synthetic_stems"] == list(SYN) and source["merged"]["synthetic_source"] == {"seed": 3}
    assert source["merged"]["real_source"] == {}
    np.testing.assert_array_equal(summary.before, [0, 4, 3, 1])
    np.testing.assert_array_equal(summary.after, [0, 4 + 3, 3 + 3, 1 + 4])
    assert {real: _digest(real), syn: _digest(syn)} == before  # inputs untouched


def test_merge_with_n_balance_selects(pair, tmp_path):
    real, syn = pair
    summary = merge_datasets(real, syn, tmp_path / "m", n_balance=5)
    assert summary.selected == ["s_abc", "s_bc", "s_c1", "s_c2"]
    np.testing.assert_array_equal(summary.after, [0, 5, 5, 5])
    merged = Dataset(tmp_path / "m")
    assert merged.split("synthetic") == summary.selected and "s_a2" not in merged.stems
    assert merged.split("train") == ["i1", "i2", "i3", "i4", "i5", *summary.selected]
    assert json.loads((tmp_path / "m" / "dataset.json").read_text())["source"]["merged"]["n_balance"] == 5
    report = summary.distribution()
    assert report["after"]["cir"]["all"] == 0.0 < report["before"]["cir"]["all"]


def test_stem_clash_is_rejected_before_writing(pair, tmp_path):
    real, _ = pair
    clash = write_dataset(tmp_path / "clash", [class_sample("i2", (1,)), class_sample("new", (2,))], synthetic=True)
    with pytest.raises(
        DatasetError, match=r"stems i2 exist in both .*real and .*clash: merged stems must be unique"
    ) as err:
        merge_datasets(real, clash, tmp_path / "out")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))


def test_class_mismatch_is_rejected(pair, tmp_path):
    real, _ = pair
    other = write_dataset(tmp_path / "other", [class_sample("x", (1,))], classes=["scratch", "spot"])
    with pytest.raises(DatasetError, match="cannot be combined"):
        merge_datasets(real, other, tmp_path / "out")


def test_masks_on_one_side_only_are_rejected(pair, tmp_path):
    from defectsynth.data import DatasetWriter, Manifest
    from defectsynth.data.model import make_classes

    real, _ = pair
    with DatasetWriter(tmp_path / "boxes-only", Manifest("b", make_classes(["scratch", "spot", "crack"]))) as writer:
        sample = class_sample("x", (1,))
        sample.mask = None
        writer.add(sample)
        writer.commit()
    with pytest.raises(DatasetError, match="has masks/ but .*boxes-only has no: they cannot be merged"):
        merge_datasets(real, tmp_path / "boxes-only", tmp_path / "out")
