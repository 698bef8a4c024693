"""``defectsynth balance``: option mapping (core patched), end-to-end plan and merge, bad input, help."""

from __future__ import annotations

import json
from pathlib import Path
from unittest import mock

from _handmade import class_sample
from _metrics_data import write_dataset

from defectsynth.balancing import plan_balance
from defectsynth.cli import app
from defectsynth.data import Dataset


def _plan_result(tmp_path):
    real = write_dataset(
        tmp_path / "real", [class_sample("i1", (1,)), class_sample("i2", (1, 2))], splits={"train": ["i1", "i2"]}
    )
    return plan_balance(real, 2)


def test_options_map_to_balance(tmp_path, runner):
    result = _plan_result(tmp_path)
    with mock.patch("defectsynth.balancing.balance", return_value=result) as core:
        res = runner.invoke(
            app, ["balance", "d", "--n-balance", "7", "--plan-out", "p.json", "--split", "all", "--no-progress"]
        )
    assert res.exit_code == 0, res.output
    core.assert_called_once_with(
        Path("d"),
        n_balance="7",
        plan_out=Path("p.json"),
        synthetic=None,
        out=None,
        split=None,
        overwrite=False,
        progress=False,
    )
    with mock.patch("defectsynth.balancing.balance", return_value=result) as core:
        res = runner.invoke(app, ["balance", "d", "--with", "s", "--out", "m", "--overwrite"])
    assert res.exit_code == 0, res.output
    core.assert_called_once_with(
        Path("d"),
        n_balance=None,
        plan_out=None,
        synthetic=Path("s"),
        out=Path("m"),
        split="train",
        overwrite=True,
        progress=True,
    )


def test_plan_end_to_end(tmp_path, runner):
    real = write_dataset(
        tmp_path / "real",
        [class_sample("i1", (1,)), class_sample("i2", (1, 2)), class_sample("i3", (1,))],
        splits={"train": ["i1", "i2", "i3"]},
    )
    plan = tmp_path / "plan.json"
    res = runner.invoke(app, ["balance", str(real), "--plan-out", str(plan), "--no-progress"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    # auto: |D| = 3; a is in 3 images, b in 1: |D_gen|(3) = 2, (4) = 1 + 3 = 4: both 1 away -> 3
    data = json.loads(plan.read_text())
    assert data["n_balance"] == 3 and data["plan"] == [{"stem": "i2", "repeats": 2}]
    assert "Entropy" in res.output and "CIR" in res.output and "before" in res.output and "after" in res.output
    assert "crack" in res.output and "2 generations from 1 conditions" in res.output


def test_merge_end_to_end(tmp_path, runner):
    real = write_dataset(
        tmp_path / "real", [class_sample("i1", (1,)), class_sample("i2", (2,))], splits={"train": ["i1", "i2"]}
    )
    syn = write_dataset(
        tmp_path / "syn", [class_sample("s1", (1,)), class_sample("s2", (2,)), class_sample("s3", (2,))], synthetic=True
    )
    res = runner.invoke(
        app,
        ["balance", str(real), "--with", str(syn), "--n-balance", "2", "--out", str(tmp_path / "m"), "--no-progress"],
    )
    assert res.exit_code == 0, res.output
    assert "merged 2 real + 2 of 3 synthetic samples" in res.output
    assert sorted(p.stem for p in (tmp_path / "m" / "images").iterdir()) == ["i1", "i2", "s1", "s2"]


def test_bad_input_is_one_line_and_exit_2(tmp_path, runner, toy_dataset):
    toy_classes = [c.name for c in Dataset(toy_dataset).manifest.classes[1:]]
    clash = write_dataset(tmp_path / "clash", [class_sample("toy-00000", (1,))], synthetic=True, classes=toy_classes)
    cases = [
        (["balance", str(toy_dataset)], "give either --plan-out"),
        (["balance", str(toy_dataset), "--plan-out", "p.json", "--with", str(toy_dataset)], "not both or neither"),
        (["balance", str(toy_dataset), "--with", str(toy_dataset)], "needs both --with SYNTH and --out"),
        (["balance", str(toy_dataset), "--plan-out", str(tmp_path / "p.json"), "--n-balance", "lots"], "--n-balance"),
        (
            ["balance", str(toy_dataset), "--plan-out", str(tmp_path / "p.json"), "--split", "nope"],
            "split 'nope' not found",
        ),
        (
            ["balance", str(toy_dataset), "--with", str(clash), "--out", str(tmp_path / "m")],
            "merged stems must be unique",
        ),
        (["balance", str(tmp_path / "nope"), "--plan-out", "p.json"], "dataset folder not found"),
    ]
    for args, message in cases:
        res = runner.invoke(app, [*args, "--no-progress"])
        assert res.exit_code == 2, (args, res.output)
        lines = res.output.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, res.output)
    assert not (tmp_path / "m").exists()


def test_help_shows_examples(runner):
    res = runner.invoke(app, ["balance", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    assert "defectsynth balance data/wood --n-balance auto --plan-out plan.json" in res.output
    assert "Algorithm 1" in res.output and "--with" in res.output
