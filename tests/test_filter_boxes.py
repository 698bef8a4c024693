"""``filter --by boxes``: clip labels to their boxes, reject by SAE or empty boxes; provenance and summary."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from _metrics_data import write_dataset

from defectsynth.data import Box, Dataset, Sample
from defectsynth.errors import DatasetError, OptionError
from defectsynth.filtering import box_problems, clip_to_boxes, filter_dataset

# Hand-made 6x6 mask (1, 2 = classes, 255 = ignore) and the boxes that conditioned it.
MASK = np.array(
    [
        [1, 1, 0, 0, 2, 0],
        [1, 1, 0, 0, 2, 0],
        [0, 0, 1, 0, 0, 0],
        [0, 0, 0, 255, 0, 0],
        [2, 2, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0],
    ],
    np.uint8,
)
BOXES = [Box(1, 0, 0, 2, 2), Box(2, 4, 0, 6, 2), Box(1, 0, 4, 3, 6)]
# (2, 2) and (4, 5) are class 1 outside both class-1 boxes; (4, 0) and (4, 1) are class 2 inside a
# class-1 box only; the ignore pixel stays. The second class-1 box holds no class-1 pixel.
CLIPPED = np.array(
    [
        [1, 1, 0, 0, 2, 0],
        [1, 1, 0, 0, 2, 0],
        [0, 0, 0, 0, 0, 0],
        [0, 0, 0, 255, 0, 0],
        [0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0],
    ],
    np.uint8,
)


def test_clip_labels_by_hand():
    before = MASK.copy()
    np.testing.assert_array_equal(clip_to_boxes(MASK, BOXES), CLIPPED)
    np.testing.assert_array_equal(MASK, before)  # a new array
    np.testing.assert_array_equal(clip_to_boxes(MASK, []), np.where(MASK == 255, 255, 0))


def test_box_problems_by_hand():
    sample = Sample("x", np.zeros((6, 6, 3), np.uint8), MASK, BOXES)
    # 10 defect pixels (6 of class 1, 4 of class 2), 4 outside their class's boxes: SAE 0.4
    assert box_problems(sample, 3, None, False) == []
    assert box_problems(sample, 3, 0.4, False) == []
    assert box_problems(sample, 3, 0.39, True) == [
        "1 of 3 boxes hold no pixel of their class",
        "SAE 0.400 > max_sae 0.39 (4 of 10 defect pixels outside their boxes)",
    ]


def _pad(mask: np.ndarray) -> np.ndarray:
    out = np.zeros((8, 8), np.uint8)
    out[: mask.shape[0], : mask.shape[1]] = mask
    return out


def _samples() -> list[Sample]:
    image = np.full((8, 8, 3), 90, np.uint8)
    clean = np.zeros((8, 8), np.uint8)
    clean[1:3, 1:3] = 2
    leaky = np.zeros((8, 8), np.uint8)
    leaky[0:2, 0:2] = 1
    leaky[6, 6] = 1  # 1 of 5 pixels outside: SAE 0.2
    return [
        Sample("bad", image, _pad(MASK), BOXES),
        Sample("clean", image, clean, [Box(2, 1, 1, 3, 3)]),
        Sample("leaky", image, leaky, [Box(1, 0, 0, 2, 2)]),
    ]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    out = tmp_path_factory.mktemp("filter") / "syn"
    source = {"condition_of": {"bad": "r1", "clean": "r2", "leaky": "r3"}, "seed": 1}
    write_dataset(
        out, _samples(), source=source, synthetic=True, splits={"train": ["bad", "clean", "leaky"]}, classes=["a", "b"]
    )
    (out / "conditions").mkdir()
    for stem in ("bad", "clean"):
        (out / "conditions" / f"{stem}.npz").write_bytes(stem.encode())  # a cache travels with its sample
    return out


def _digest(root):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_clip_labels_keeps_every_sample(synthetic, tmp_path):
    before = _digest(synthetic)
    summary = filter_dataset(synthetic, tmp_path / "out", "boxes", clip_labels=True)
    out = Dataset(tmp_path / "out")
    assert out.stems == ["bad", "clean", "leaky"] and summary.removed == {}
    np.testing.assert_array_equal(out.read_mask("bad"), _pad(CLIPPED))
    np.testing.assert_array_equal(out.read_mask("clean"), Dataset(synthetic).read_mask("clean"))
    assert out.read_mask("leaky")[6, 6] == 0 and out.read_mask("leaky").sum() == 4
    np.testing.assert_array_equal(summary.clipped_pixels, [0, 3, 2])
    record = out.manifest.source["filters"][-1]
    assert record["by"] == "boxes" and record["clipped_pixels"] == {"bad": 4, "leaky": 1}
    assert record["options"] == {
        "clip_labels": True,
        "max_sae": None,
        "drop_empty_boxes": False,
        "class_agnostic": False,
    }
    assert out.manifest.synthetic and out.manifest.source["seed"] == 1
    # input images per class: a in bad + leaky, b in bad + clean; after clipping bad keeps both
    np.testing.assert_array_equal(summary.input_images, [0, 2, 2])
    np.testing.assert_array_equal(summary.kept_images, [0, 2, 2])
    assert _digest(synthetic) == before  # the input is never modified


def test_reject_by_sae_and_empty_boxes(synthetic, tmp_path):
    summary = filter_dataset(synthetic, tmp_path / "out", "boxes", max_sae=0.3, drop_empty_boxes=True)
    assert summary.kept == ["clean", "leaky"] and list(summary.removed) == ["bad"]
    assert (
        "1 of 3 boxes hold no pixel" in summary.removed["bad"] and "SAE 0.400 > max_sae 0.3" in summary.removed["bad"]
    )
    out = Dataset(tmp_path / "out")
    assert out.split("train") == ["clean", "leaky"]
    assert out.read_mask("leaky")[6, 6] == 1  # not clipped without clip_labels
    assert [p.name for p in (tmp_path / "out" / "conditions").iterdir()] == ["clean.npz"]
    assert out.manifest.source["condition_of"] == {"clean": "r2", "leaky": "r3"}
    assert out.manifest.source["filters"][-1]["removed"] == summary.removed
    np.testing.assert_array_equal(summary.removed_images, [0, 1, 1])

    strict = filter_dataset(synthetic, tmp_path / "strict", "boxes", max_sae=0.1)
    assert (
        strict.kept == ["clean"]
        and strict.removed["leaky"] == "SAE 0.200 > max_sae 0.1 (1 of 5 defect pixels outside their boxes)"
    )
    # filtering a filtered folder appends a second record
    again = filter_dataset(tmp_path / "strict", tmp_path / "again", "boxes", clip_labels=True)
    assert [r["input"] for r in Dataset(again.out).manifest.source["filters"]] == [
        str(synthetic.resolve()),
        str((tmp_path / "strict").resolve()),
    ]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({}, OptionError, "--by boxes needs --clip-labels"),
        ({"max_sae": 1.5}, OptionError, "--max-sae must lie in"),
        ({"clip_labels": True, "top_k": 3}, OptionError, "belong to --by segmenter"),
    ],
)
def test_bad_box_options(synthetic, tmp_path, kwargs, error, message):
    with pytest.raises(error, match=message):
        filter_dataset(synthetic, tmp_path / "out", "boxes", **kwargs)
    assert not (tmp_path / "out").exists()


def test_everything_rejected_writes_nothing(tmp_path):
    syn = write_dataset(
        tmp_path / "syn", [s for s in _samples() if s.stem != "clean"], synthetic=True, classes=["a", "b"]
    )
    with pytest.raises(DatasetError, match="every one of the 2 samples was rejected"):
        filter_dataset(syn, tmp_path / "out", "boxes", max_sae=0.1)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))


def test_needs_masks(tmp_path):
    from defectsynth.data import DatasetWriter, Manifest
    from defectsynth.data.model import make_classes

    with DatasetWriter(tmp_path / "nomask", Manifest("n", make_classes(["a"]))) as writer:
        writer.add(Sample("x", np.zeros((4, 4, 3), np.uint8), None, [Box(1, 0, 0, 2, 2)]))
        writer.commit()
    with pytest.raises(DatasetError, match="no masks/ folder"):
        filter_dataset(tmp_path / "nomask", tmp_path / "out", "boxes", clip_labels=True)
