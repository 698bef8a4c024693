"""``defectsynth encode-boxes``: option mapping, files written, bad input, atomic replacement."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from unittest import mock

import cv2
import numpy as np
import pytest

from defectsynth.cli import app
from defectsynth.data import Dataset
from defectsynth.data.files import read_image, read_json
from defectsynth.data.model import boxes_to_array
from defectsynth.encoding import basd_maps, boxes_from_mask
from defectsynth.encoding import conditions as conditions_module
from defectsynth.encoding.conditions import EncodeSummary, encode_boxes
from defectsynth.errors import DatasetError
from defectsynth.formats.conditions import read_conditions


@pytest.fixture
def toy(toy_dataset, tmp_path) -> Path:
    return Path(shutil.copytree(toy_dataset, tmp_path / "toy"))


def _one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def _handmade(root: Path, boxes: dict[str, list | None], size=(20, 30)) -> Path:
    """A dataset folder written by hand, following the data contract (no masks)."""
    (root / "images").mkdir(parents=True)
    (root / "boxes").mkdir()
    classes = [{"id": 0, "name": "background", "color": [0, 0, 0]}, {"id": 1, "name": "dent", "color": [250, 0, 0]}]
    (root / "dataset.json").write_text(json.dumps({"format": 1, "name": "hand", "classes": classes}))
    for stem, items in boxes.items():
        cv2.imwrite(str(root / "images" / f"{stem}.png"), np.full((*size, 3), 90, np.uint8))
        if items is not None:
            (root / "boxes" / f"{stem}.json").write_text(json.dumps([{"class": 1, "box": b} for b in items]))
    return root


def test_cli_maps_options_to_the_core_function(runner, toy_dataset):
    summary = EncodeSummary(toy_dataset, "nearest", maps=3)
    with mock.patch.object(conditions_module, "encode_boxes", return_value=summary) as core:
        result = runner.invoke(
            app,
            [
                "encode-boxes",
                str(toy_dataset),
                "--class-fill",
                "nearest",
                "--preview",
                "4",
                "--from-masks",
                "--min-box-area",
                "9",
                "--no-progress",
            ],
        )
    assert result.exit_code == 0, result.output
    core.assert_called_once_with(
        toy_dataset, class_fill="nearest", preview=4, from_masks=True, min_box_area=9, progress=False
    )
    assert "3 condition maps" in result.output


def test_help_shows_examples(runner):
    result = runner.invoke(app, ["encode-boxes", "--help"])
    assert result.exit_code == 0 and "Examples" in result.output and "--from-masks" in result.output


def test_end_to_end_on_a_prepared_dataset(runner, toy):
    result = runner.invoke(app, ["encode-boxes", str(toy), "--preview", "2", "--no-progress"])
    assert result.exit_code == 0, result.output
    ds = Dataset(toy)
    assert sorted(p.stem for p in (toy / "conditions").glob("*.npz")) == ds.stems
    for stem in ds.stems:
        sample = ds.read(stem)
        with np.load(toy / "conditions" / f"{stem}.npz", allow_pickle=False) as data:
            basd, cbasd = data["basd"], data["cbasd"]
            assert str(data["class_fill"]) == "inside"
        want_basd, want_cbasd = basd_maps(*boxes_to_array(sample.boxes), *sample.size)
        assert basd.dtype == np.float32 and cbasd.dtype == np.uint8
        assert np.array_equal(basd, want_basd) and np.array_equal(cbasd, want_cbasd)
    previews = sorted((toy / "conditions" / "preview").glob("*.png"))
    assert [p.stem for p in previews] == ds.stems[:2]
    preview = read_image(previews[0])
    assert preview.shape[0] > 256 and preview.shape[1] > 3 * 256  # three enlarged panels side by side
    assert not [p for p in toy.iterdir() if p.name.startswith(".")]  # no partial folders left behind


def test_handmade_folder_with_missing_and_empty_box_files(runner, tmp_path):
    root = _handmade(tmp_path / "hand", {"a": [[2, 3, 12, 9], [10, 5, 30, 20]], "b": [], "c": None})
    result = runner.invoke(app, ["encode-boxes", str(root), "--preview", "3", "--no-progress"])
    assert result.exit_code == 0, result.output
    a = read_conditions(root / "conditions" / "a.npz")
    assert (
        a["basd"].shape == (20, 30)
        and a["xyxy"].tolist() == [[2, 3, 12, 9], [10, 5, 30, 20]]
        and a["class_fill"] == "inside"
    )
    assert (a["cbasd"][3:9, 2:12] == 1).all() and a["cbasd"][0, 0] == 0
    for stem in ("b", "c"):  # no boxes: every pixel -1, background
        empty = read_conditions(root / "conditions" / f"{stem}.npz")
        assert (empty["basd"] == -1).all() and (empty["cbasd"] == 0).all()
    assert len(list((root / "conditions" / "preview").glob("*.png"))) == 3


def test_bad_boxes_are_reported_per_file_and_nothing_is_written(runner, tmp_path):
    root = _handmade(
        tmp_path / "hand", {"good": [[0, 0, 5, 5]], "empty": [[4, 4, 4, 9]], "wide": [[3, 1, 2, 5], [25, 0, 31, 4]]}
    )
    line = _one_line_error(runner.invoke(app, ["encode-boxes", str(root), "--no-progress"]))
    assert "2 of 3 files" in line and "empty.json" in line and "wide.json" in line and "good.json" not in line
    assert "empty or inverted" in line and "outside the 30x20 image" in line
    assert not (root / "conditions").exists() and not [p for p in root.iterdir() if p.name.startswith(".")]


def test_from_masks_rewrites_boxes(runner, toy):
    for path in (toy / "boxes").glob("*.json"):
        path.write_text("[]")  # boxes lost: they must come back from the masks
    result = runner.invoke(app, ["encode-boxes", str(toy), "--from-masks", "--min-box-area", "3", "--no-progress"])
    assert result.exit_code == 0, result.output
    ds = Dataset(toy)
    for stem in ds.stems:
        boxes = ds.read_boxes(stem)
        assert boxes == boxes_from_mask(ds.read_mask(stem), min_area=3)
        assert read_conditions(toy / "conditions" / f"{stem}.npz")["xyxy"].tolist() == [list(b.xyxy) for b in boxes]
    assert any(ds.read_boxes(stem) for stem in ds.stems)
    counts = Counter(box.cls for stem in ds.stems for box in ds.read_boxes(stem))
    stats = read_json(toy / "dataset.json")["stats"]
    assert stats["boxes_per_class"] == {name: counts[cid] for cid, name in sorted(ds.manifest.class_names.items())}


def test_from_masks_with_a_bad_mask_leaves_boxes_untouched(runner, toy):
    before = {p.name: p.read_bytes() for p in (toy / "boxes").iterdir()}
    stem = Dataset(toy).stems[3]
    cv2.imwrite(str(toy / "masks" / f"{stem}.png"), np.full((32, 32), 9, np.uint8))  # class 9 is not declared
    line = _one_line_error(runner.invoke(app, ["encode-boxes", str(toy), "--from-masks", "--no-progress"]))
    assert f"{stem}.png" in line and "[9]" in line
    assert {p.name: p.read_bytes() for p in (toy / "boxes").iterdir()} == before
    assert not (toy / "conditions").exists()


def test_interrupted_run_keeps_the_previous_cache(toy, monkeypatch):
    encode_boxes(toy, progress=False)
    before = {p.name: p.read_bytes() for p in (toy / "conditions").iterdir()}
    calls = {"n": 0}
    original = conditions_module._write_conditions

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(conditions_module, "_write_conditions", failing)
    with pytest.raises(KeyboardInterrupt):
        encode_boxes(toy, class_fill="nearest", progress=False)
    assert {p.name: p.read_bytes() for p in (toy / "conditions").iterdir()} == before
    assert not [p for p in toy.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--min-box-area", "5"], "--min-box-area only applies with --from-masks"),
        (["--preview", "-1"], "--preview"),
        (["--from-masks", "--min-box-area", "0"], "--min-box-area"),
    ],
)
def test_bad_options_exit_2(runner, toy_dataset, args, needle):
    assert needle in _one_line_error(runner.invoke(app, ["encode-boxes", str(toy_dataset), *args, "--no-progress"]))


def test_from_masks_needs_masks_and_a_dataset(runner, tmp_path):
    root = _handmade(tmp_path / "hand", {"a": []})
    assert "no masks/ folder" in _one_line_error(runner.invoke(app, ["encode-boxes", str(root), "--from-masks"]))
    assert "dataset folder not found" in _one_line_error(runner.invoke(app, ["encode-boxes", str(tmp_path / "nope")]))


def test_read_conditions_refuses_other_files(tmp_path):
    np.savez(tmp_path / "x.npz", basd=np.zeros((2, 2), np.float64))
    with pytest.raises(DatasetError, match="not a conditions file"):
        read_conditions(tmp_path / "x.npz")
    np.savez(
        tmp_path / "y.npz",
        basd=np.zeros((2, 2)),
        cbasd=np.zeros((2, 2), np.uint8),
        xyxy=np.zeros((0, 4)),
        classes=np.zeros(0),
        class_fill=np.array("inside"),
    )
    with pytest.raises(DatasetError, match="float32/uint8"):
        read_conditions(tmp_path / "y.npz")
    with pytest.raises(DatasetError, match="not found"):
        read_conditions(tmp_path / "z.npz")
