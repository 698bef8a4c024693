"""CLI option mapping of ``prepare`` for the importer options (the core function patched)."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import pytest

from defectsynth.cli import app
from defectsynth.data.model import Manifest, make_classes


@pytest.mark.parametrize(
    "argv, expected",
    [
        (
            ["lemons", "--source", "L.zip", "--binary", "blemish", "--ignore", "pedicel"],
            {"source_dir": Path("L.zip"), "binary": "blemish", "ignore": "pedicel"},
        ),
        (
            ["lemons", "--source", "L", "--classes", "blemish,illness,mould"],
            {"source_dir": Path("L"), "classes": "blemish,illness,mould"},
        ),
        (
            ["coco", "--annotations", "a.json", "--images", "imgs"],
            {"annotations": Path("a.json"), "images": Path("imgs")},
        ),
        (
            ["masks", "--source", "M", "--palette", "p.json", "--min-box-area", "4"],
            {"source_dir": Path("M"), "palette": Path("p.json"), "min_box_area": 4},
        ),
        (
            ["masks", "--source", "M", "--class-from-folder", "--background-folder", "good,Free"],
            {"source_dir": Path("M"), "class_from_folder": True, "background_folder": "good,Free"},
        ),
        (
            [
                "wood",
                "--source",
                "W",
                "--size",
                "352x128",
                "--keep-aspect",
                "--split-fractions",
                "0.7,0.2,0.1",
                "--seed",
                "3",
            ],
            {
                "source_dir": Path("W"),
                "size": "352x128",
                "keep_aspect": True,
                "split_fractions": "0.7,0.2,0.1",
                "seed": 3,
            },
        ),
    ],
)
def test_options_reach_the_core_function(runner, tmp_path, argv, expected):
    manifest = Manifest("x", make_classes(["a"]))
    with mock.patch("defectsynth.data.prepare.prepare", return_value=manifest) as core:
        result = runner.invoke(app, ["prepare", *argv, "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    (source, out), kwargs = core.call_args
    assert source == argv[0] and out == tmp_path / "o"
    for key, value in expected.items():
        assert kwargs[key] == value, key
    unset = {"binary", "ignore", "annotations", "images", "palette", "background_folder", "min_box_area"} - set(
        expected
    )
    assert all(kwargs[k] is None for k in unset)


def test_end_to_end_masks_cli(runner, tmp_path):
    from _formats import rect_mask, write_pair

    write_pair(tmp_path / "src", "a", rect_mask(16, 16, (2, 2, 8, 8), value=255), mask_name="a_mask.png")
    result = runner.invoke(
        app,
        [
            "prepare",
            "masks",
            "--source",
            str(tmp_path / "src"),
            "--out",
            str(tmp_path / "o"),
            "--size",
            "16",
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "defect" in result.output and (tmp_path / "o" / "boxes" / "a.json").read_text().count("class") == 1
