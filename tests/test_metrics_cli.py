"""``defectsynth metrics``: option mapping (core patched), bad input, help."""

from __future__ import annotations

import json
from pathlib import Path
from unittest import mock

from defectsynth.cli import app

CANNED = {"fid": {"64": 1.5}, "lpips": {"alex": {"mean": 0.25, "std": 0.5, "pairs": 3}}}


def test_options_map_to_compute_metrics(tmp_path, runner):
    out = tmp_path / "m.json"
    with mock.patch("defectsynth.metrics.compute_metrics", return_value=CANNED) as core:
        res = runner.invoke(
            app,
            [
                "metrics",
                "fid",
                "lpips",
                "--synthetic",
                "s",
                "--real",
                "r",
                "--split",
                "val",
                "--json",
                str(out),
                "--features",
                "64",
                "--nets",
                "alex",
                "--weights-dir",
                "w",
                "--batch-size",
                "4",
                "--device",
                "cpu",
                "--no-progress",
            ],
        )
    assert res.exit_code == 0, res.output
    core.assert_called_once_with(
        ["fid", "lpips"],
        synthetic=Path("s"),
        real=Path("r"),
        split="val",
        features="64",
        nets="alex",
        weights_dir=Path("w"),
        batch_size=4,
        hf_cutoff=0.25,
        device="cpu",
        progress=False,
        class_agnostic=False,
    )
    assert json.loads(out.read_text()) == CANNED
    assert "0.25" in res.output and "1.5" in res.output


def test_defaults(runner):
    with mock.patch("defectsynth.metrics.compute_metrics", return_value={}) as core:
        res = runner.invoke(app, ["metrics", "entropy", "--real", "r"])
    assert res.exit_code == 0, res.output
    kwargs = core.call_args.kwargs
    assert kwargs["features"] == "64,192,768,2048" and kwargs["nets"] == "alex,vgg,squeeze"
    assert (
        kwargs["synthetic"] is None
        and kwargs["weights_dir"] is None
        and kwargs["device"] is None
        and kwargs["progress"] is True
    )


def test_bad_input_is_one_line_and_exit_2(tmp_path, runner, toy_dataset):
    cases = [
        (["metrics", "miou", "--synthetic", str(toy_dataset)], "unknown metric 'miou'"),
        (["metrics", "sae", "--real", str(toy_dataset)], "sae needs --synthetic"),
        (["metrics", "fid", "--synthetic", str(toy_dataset)], "fid needs both --real and --synthetic"),
        (["metrics", "sae", "--synthetic", str(tmp_path / "nope")], "dataset folder not found"),
        (["metrics", "sae", "--synthetic", str(toy_dataset), "--split", "nope"], "split 'nope' not found"),
        (
            ["metrics", "fid", "--synthetic", str(toy_dataset), "--real", str(toy_dataset), "--features", "100"],
            "--features: '100'",
        ),
        (
            ["metrics", "lpips", "--synthetic", str(toy_dataset), "--real", str(toy_dataset), "--batch-size", "0"],
            "--batch-size",
        ),
    ]
    for args, message in cases:
        res = runner.invoke(app, [*args, "--no-progress"])
        assert res.exit_code == 2, (args, res.output)
        lines = res.output.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, res.output)


def test_help_shows_examples_and_pairing(runner):
    res = runner.invoke(app, ["metrics", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    assert "defectsynth metrics sae ebr --synthetic" in res.output
    assert "source.condition_of[stem]" in res.output and "--weights-dir" in res.output


def test_cuda_without_cuda_is_refused(toy_dataset, monkeypatch):
    import pytest
    import torch

    from defectsynth.errors import OptionError
    from defectsynth.metrics import compute_metrics

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(OptionError, match="no CUDA device"):
        compute_metrics(["sae"], synthetic=toy_dataset, device="cuda")
