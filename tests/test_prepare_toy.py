from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from defectsynth.cli import app
from defectsynth.data import Dataset
from defectsynth.data.prepare import prepare
from defectsynth.data.sources.toy import TOY_CLASSES, toy_sample
from defectsynth.errors import OptionError, OutputExistsError


def _digest(folder):
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def test_toy_masks_and_boxes_are_exact(toy_dataset):
    ds = Dataset(toy_dataset)
    assert len(ds) == 24
    for sample in ds:
        assert sample.image.shape == (32, 32, 3) and sample.mask.shape == (32, 32)
        present = set(np.unique(sample.mask).tolist()) - {0}
        assert present == {b.cls for b in sample.boxes}
        for box in sample.boxes:
            inside = sample.mask[box.y_min : box.y_max, box.x_min : box.x_max] == box.cls
            # every box edge row/column touches its class: the box is tight
            assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()


def test_toy_same_seed_same_bytes(tmp_path):
    prepare("toy", tmp_path / "a", num=6, size="32", seed=3)
    prepare("toy", tmp_path / "b", num=6, size="32", seed=3)
    prepare("toy", tmp_path / "c", num=6, size="32", seed=4)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b") != _digest(tmp_path / "c")


def test_toy_sample_independent_of_count():
    a = toy_sample(5, 0, (32, 32), TOY_CLASSES)
    b = toy_sample(5, 0, (32, 32), TOY_CLASSES)
    assert np.array_equal(a.image, b.image) and a.boxes == b.boxes


def test_toy_has_every_class_and_defect_free_images(tmp_path):
    manifest = prepare("toy", tmp_path / "t", num=60, size="32")
    stats = manifest.stats
    assert all(stats["images_per_class"][c] > 0 for c in TOY_CLASSES)
    assert stats["defect_free_images"] > 0
    saved = json.loads((tmp_path / "t" / "dataset.json").read_text())
    assert saved["stats"] == stats


def test_splits_cover_all_stems_once(toy_dataset):
    ds = Dataset(toy_dataset)
    parts = [ds.split(n) for n in ("train", "val", "test")]
    flat = [s for p in parts for s in p]
    assert sorted(flat) == ds.stems and len(set(flat)) == len(flat)
    assert [len(p) for p in parts] == [17, 5, 2]


def test_toy_classes_subset(tmp_path):
    manifest = prepare("toy", tmp_path / "t", num=10, size="32", classes="crack,spot")
    assert [c.name for c in manifest.classes] == ["background", "spot", "crack"]


def test_output_exists_refused_then_overwritten(tmp_path):
    prepare("toy", tmp_path / "t", num=3, size="32")
    with pytest.raises(OutputExistsError):
        prepare("toy", tmp_path / "t", num=3, size="32")
    prepare("toy", tmp_path / "t", num=4, size="32", overwrite=True)
    assert len(Dataset(tmp_path / "t")) == 4


def test_overwrite_never_deletes_a_user_folder(tmp_path):
    user = tmp_path / "mine"
    user.mkdir()
    (user / "thesis.docx").write_text("precious")
    with pytest.raises(OutputExistsError):
        prepare("toy", user, num=3, size="32", overwrite=True)
    assert (user / "thesis.docx").read_text() == "precious"


@pytest.mark.parametrize(
    "options", [{"size": "7"}, {"size": "abc"}, {"split": "0.5,0.2"}, {"num": 0}, {"classes": "dents"}]
)
def test_bad_options_leave_no_output(tmp_path, options):
    with pytest.raises(OptionError):
        prepare("toy", tmp_path / "t", **{"num": 3, "size": "32", **options})
    assert not (tmp_path / "t").exists()
    assert not [p for p in tmp_path.iterdir()]


def test_cli_prepare_toy(runner, tmp_path):
    out = tmp_path / "t"
    args = [
        "prepare",
        "toy",
        "--out",
        str(out),
        "--num",
        "5",
        "--size",
        "32x24",
        "--seed",
        "3",
        "--split-fractions",
        "0.6,0.2,0.2",
        "--no-progress",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "scratch" in result.output and f"wrote {out}" in result.output
    stems = [f"toy-{i:05d}" for i in range(5)]
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == sorted(
        ["dataset.json", "splits/train.txt", "splits/val.txt", "splits/test.txt"]
        + [
            f"{sub}/{stem}.{ext}"
            for sub, ext in (("images", "png"), ("masks", "png"), ("boxes", "json"))
            for stem in stems
        ]
    )
    ds = Dataset(out)
    assert ds.stems == stems and len(ds) == 5
    assert all(s.image.shape == (24, 32, 3) and s.mask.shape == (24, 32) for s in ds)
    parts = [ds.split(name) for name in ("train", "val", "test")]
    assert [len(p) for p in parts] == [3, 1, 1] and sorted(sum(parts, [])) == stems
    source = ds.manifest.source
    assert (source["num"], source["size"], source["seed"], source["split"]) == (5, "32x24", 3, "0.6,0.2,0.2")
    assert ds.manifest.stats["images"] == 5
    prepare("toy", tmp_path / "api", num=5, size="32x24", seed=3, split_fractions="0.6,0.2,0.2")
    assert _digest(out) == _digest(tmp_path / "api")  # the CLI is the library call, byte for byte


def test_cli_error_is_one_line_exit_2(runner, tmp_path):
    result = runner.invoke(app, ["prepare", "toy", "--out", str(tmp_path / "t"), "--size", "12x"])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--size" in lines[0]
    assert result.exception is None or isinstance(result.exception, SystemExit)
