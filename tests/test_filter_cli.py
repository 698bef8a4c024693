"""``defectsynth filter``: option mapping (core patched), an end-to-end run, bad input, help."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import numpy as np
from _metrics_data import write_dataset

from defectsynth.cli import app
from defectsynth.data import Box, Dataset, Sample
from defectsynth.filtering import FilterSummary


def _summary(out: Path) -> FilterSummary:
    z = np.zeros(3, np.int64)
    return FilterSummary(
        out,
        "segmenter",
        ["a"],
        {"b": "rank 2 of 2 by iou 0.1000 (keeping 1)"},
        np.array([0, 2, 1]),
        np.array([0, 1, 1]),
        np.array([0, 1, 0]),
        z,
        {0: "background", 1: "knot", 2: "crack"},
    )


def test_options_map_to_filter_dataset(runner):
    with mock.patch("defectsynth.filtering.filter_dataset", return_value=_summary(Path("o"))) as core:
        res = runner.invoke(
            app,
            [
                "filter",
                "s",
                "--out",
                "o",
                "--by",
                "segmenter",
                "--real",
                "r",
                "--split",
                "all",
                "--score",
                "ce",
                "--keep-fraction",
                "0.25",
                "--size",
                "64",
                "--arch",
                "fpn",
                "--encoder",
                "resnet18",
                "--encoder-weights",
                "none",
                "--epochs",
                "3",
                "--batch-size",
                "4",
                "--lr",
                "0.001",
                "--seed",
                "7",
                "--device",
                "cpu",
                "--overwrite",
                "--no-progress",
            ],
            env={"COLUMNS": "200"},
        )
    assert res.exit_code == 0, res.output
    core.assert_called_once_with(
        Path("s"),
        Path("o"),
        "segmenter",
        clip_labels=False,
        max_sae=None,
        drop_empty_boxes=False,
        real=Path("r"),
        segmenter=None,
        split=None,
        score="ce",
        top_k=None,
        keep_fraction=0.25,
        size="64",
        arch="fpn",
        encoder="resnet18",
        encoder_weights=None,
        epochs=3,
        batch_size=4,
        lr=0.001,
        seed=7,
        device="cpu",
        overwrite=True,
        progress=False,
        class_agnostic=False,
    )
    assert "knot" in res.output and "removed b: rank 2 of 2" in res.output and "kept 1, removed 1" in res.output


def test_box_options_and_defaults(runner):
    with mock.patch("defectsynth.filtering.filter_dataset", return_value=_summary(Path("o"))) as core:
        res = runner.invoke(
            app, ["filter", "s", "-o", "o", "--by", "boxes", "--clip-labels", "--max-sae", "0.2", "--drop-empty-boxes"]
        )
    assert res.exit_code == 0, res.output
    kwargs = core.call_args.kwargs
    assert core.call_args.args == (Path("s"), Path("o"), "boxes")
    assert kwargs["clip_labels"] and kwargs["max_sae"] == 0.2 and kwargs["drop_empty_boxes"]
    assert (
        kwargs["split"] == "train"
        and kwargs["score"] == "iou"
        and kwargs["encoder"] == "resnet34"
        and kwargs["encoder_weights"] == "imagenet"
    )
    assert kwargs["epochs"] == 50 and kwargs["lr"] == 1e-4 and kwargs["progress"] is True and kwargs["device"] is None


def _leaky(out: Path) -> Path:
    """Two 8x8 samples whose labels spill out of their boxes (what --clip-labels removes)."""
    image = np.full((8, 8, 3), 90, np.uint8)
    leaky = np.zeros((8, 8), np.uint8)
    leaky[0:2, 0:2] = 1
    leaky[6, 6] = 1  # class 1 outside its box
    spill = np.zeros((8, 8), np.uint8)
    spill[2:5, 2:5] = 2  # a 3x3 blob, its box only the top-left 2x2
    samples = [Sample("leaky", image, leaky, [Box(1, 0, 0, 2, 2)]), Sample("spill", image, spill, [Box(2, 2, 2, 4, 4)])]
    return write_dataset(out, samples, synthetic=True, splits={"train": ["leaky", "spill"]}, classes=["a", "b"])


def test_boxes_end_to_end(tmp_path, runner):
    source = Dataset(_leaky(tmp_path / "syn"))
    out = tmp_path / "clipped"
    res = runner.invoke(
        app,
        ["filter", str(source.root), "--out", str(out), "--by", "boxes", "--clip-labels", "--no-progress"],
        env={"COLUMNS": "200"},
    )
    assert res.exit_code == 0, res.output
    written = Dataset(out)
    assert written.stems == source.stems and written.split_names == source.split_names
    leaky, spill = written.read_mask("leaky"), written.read_mask("spill")
    assert source.read_mask("leaky")[6, 6] == 1 and leaky[6, 6] == 0 and leaky.sum() == 4
    assert source.read_mask("spill").sum() == 2 * 9 and (spill == 2).sum() == 4 and (spill[2:4, 2:4] == 2).all()
    record = written.manifest.source["filters"][0]
    assert record["by"] == "boxes" and record["clipped_pixels"] == {"leaky": 1, "spill": 5}
    assert "images in" in res.output and "pixels clipped" in res.output and f"wrote {out}" in res.output
    rows = {
        cells[1]: cells[2:-1]
        for cells in ([c.strip() for c in line.split("│")] for line in res.output.splitlines())
        if len(cells) == 7
    }
    assert rows == {"a": ["1", "1", "0", "1"], "b": ["1", "1", "0", "5"]}, (
        res.output
    )  # images in, kept, removed, pixels clipped


def test_bad_input_is_one_line_and_exit_2(toy_dataset, tmp_path, runner):
    cases = [
        (["--by", "boxes"], "--by boxes needs --clip-labels"),
        (["--by", "boxes", "--max-sae", "2"], "--max-sae must lie in"),
        (["--by", "segmenter", "--top-k", "3"], "exactly one of --real DIR"),
        (["--by", "segmenter", "--real", str(toy_dataset)], "exactly one of --top-k K or --keep-fraction F"),
        (["--by", "segmenter", "--segmenter", str(tmp_path), "--top-k", "2"], "model.safetensors not found"),
        (["--by", "segmenter", "--real", str(toy_dataset), "--top-k", "2", "--device", "cuda:7"], "--device"),
    ]
    for args, message in cases:
        res = runner.invoke(app, ["filter", str(toy_dataset), "--out", str(tmp_path / "o"), *args, "--no-progress"])
        assert res.exit_code == 2, (args, res.output)
        lines = res.output.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, res.output)
    res = runner.invoke(app, ["filter", str(toy_dataset), "--out", str(toy_dataset), "--by", "boxes", "--clip-labels"])
    assert res.exit_code == 2 and "output folder exists" in res.output


def test_help_shows_examples(runner):
    res = runner.invoke(app, ["filter", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    assert "defectsynth filter synth/wood --out synth/wood-clipped --by boxes --clip-labels" in res.output
    assert "--top-k 128" in res.output and "scores.json" in res.output
