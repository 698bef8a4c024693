from __future__ import annotations

from pathlib import Path

import pytest

from defectsynth.cli import app


def test_cli_maps_options_to_evaluate(runner, monkeypatch, tmp_path):
    seen = {}

    def fake(real, out, **kwargs):
        seen.update(real=real, out=out, **kwargs)
        return None

    monkeypatch.setattr("defectsynth.evaluation.evaluate", fake)
    result = runner.invoke(
        app,
        [
            "evaluate",
            "--real",
            "r",
            "--synthetic",
            "s1",
            "--synthetic",
            "s2",
            "--out",
            str(tmp_path / "o"),
            "--models",
            "fpn,unet",
            "--encoder",
            "resnet18",
            "--encoder-weights",
            "none",
            "--epochs",
            "3",
            "--batch-size",
            "4",
            "--budget",
            "converge",
            "--patience",
            "4",
            "--size",
            "64",
            "--lr",
            "0.001",
            "--repeats",
            "2",
            "--seed",
            "7",
            "--mix",
            "R=all,S=0;R=all,S=R",
            "--mix",
            "R=0,S=all",
            "--per-class-binary",
            "--augment",
            "classic",
            "--loss",
            "dice+ce",
            "--optimizer",
            "adamw",
            "--model-kwargs",
            '{"encoder_depth": 3}',
            "--save-models",
            "--overwrite",
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    assert seen == {
        "real": Path("r"),
        "out": tmp_path / "o",
        "synthetic": [Path("s1"), Path("s2")],
        "models": ["fpn", "unet"],
        "encoder": "resnet18",
        "encoder_weights": "none",
        "epochs": 3,
        "budget": "converge",
        "steps": None,
        "patience": 4,
        "batch_size": 4,
        "size": "64",
        "lr": 0.001,
        "repeats": 2,
        "seed": 7,
        "mix": ["R=all,S=0", "R=all,S=R", "R=0,S=all"],
        "per_class_binary": True,
        "augment": "classic",
        "loss": "dice+ce",
        "optimizer": "adamw",
        "model_kwargs": {"encoder_depth": 3},
        "save_models": True,
        "overwrite": True,
        "progress": False,
        "train_split": "train",
        "test_split": "test",
        "lr_schedule": "step",
        "preset": None,
    }


def test_cli_defaults_follow_the_thesis(runner, monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr("defectsynth.evaluation.evaluate", lambda real, out, **kw: seen.update(kw))
    result = runner.invoke(app, ["evaluate", "--real", "r", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert seen["models"] == ["unetplusplus", "fpn", "deeplabv3plus"] and seen["encoder"] == "resnet34"
    assert (seen["encoder_weights"], seen["epochs"], seen["size"], seen["repeats"], seen["mix"]) == (
        "imagenet",
        50,
        "256",
        3,
        None,
    )
    assert (seen["batch_size"], seen["lr"], seen["loss"], seen["augment"], seen["optimizer"]) == (
        8,
        1e-4,
        "dice",
        "none",
        "adam",
    )
    # the fair comparison is the default: equal optimiser steps for every mix, at least two repeats
    assert (seen["budget"], seen["steps"], seen["patience"]) == ("steps", None, 5) and seen["repeats"] >= 2


def test_cli_passes_an_explicit_step_budget(runner, monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr("defectsynth.evaluation.evaluate", lambda real, out, **kw: seen.update(kw))
    result = runner.invoke(
        app, ["evaluate", "--real", "r", "--out", str(tmp_path / "o"), "--steps", "300", "--epochs", "10"]
    )
    assert result.exit_code == 0, result.output
    assert (seen["budget"], seen["steps"], seen["epochs"]) == ("steps", 300, 10)


def test_help_shows_examples(runner):
    result = runner.invoke(app, ["evaluate", "--help"])
    assert result.exit_code == 0 and "Examples" in result.output and "R=all,S=0" in result.output


def _one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--mix", "R=all"], "--mix"),
        (["--model-kwargs", "{bad"], "--model-kwargs"),
        (["--epochs", "0"], "--epochs"),
        (["--size", "40"], "divisible by 32"),
        (["--mix", "R=all,S=100000"], "only"),
        (["--models", "nosuchnet", "--mix", "R=all,S=0"], "nosuchnet"),
        (["--budget", "foo"], "--budget must be one of steps, converge, epochs"),
        (["--patience", "0"], "--patience must be at least 1"),
        (["--steps", "0"], "--steps must be at least 1"),
        (["--budget", "epochs", "--steps", "100"], "--steps 100 sets the step budget"),
    ],
)
def test_bad_options_exit_2_with_one_line(runner, toy_dataset, tmp_path, args, needle):
    base = [
        "evaluate",
        "--real",
        str(toy_dataset),
        "--synthetic",
        str(toy_dataset),
        "--out",
        str(tmp_path / "o"),
        "--encoder-weights",
        "none",
        "--epochs",
        "1",
        "--size",
        "32",
        "--repeats",
        "1",
        "--no-progress",
    ]
    assert needle in _one_line_error(runner.invoke(app, base + args))


def test_missing_real_dataset_and_missing_synthetic(runner, toy_dataset, tmp_path):
    assert "dataset" in _one_line_error(
        runner.invoke(app, ["evaluate", "--real", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    )
    line = _one_line_error(
        runner.invoke(
            app, ["evaluate", "--real", str(toy_dataset), "--out", str(tmp_path / "o"), "--mix", "R=all,S=100"]
        )
    )
    assert "--synthetic" in line


def test_offline_imagenet_weights_is_one_clear_line(runner, toy_dataset, tmp_path, monkeypatch):
    import segmentation_models_pytorch as smp
    from huggingface_hub.utils import LocalEntryNotFoundError  # also where huggingface-hub 0.24 (the floor) has it

    def offline(*args, **kwargs):
        raise LocalEntryNotFoundError("cannot find the requested files in the local cache")

    monkeypatch.setattr(smp, "create_model", offline)
    result = runner.invoke(
        app,
        [
            "evaluate",
            "--real",
            str(toy_dataset),
            "--out",
            str(tmp_path / "o"),
            "--mix",
            "R=all,S=0",
            "--epochs",
            "1",
            "--size",
            "32",
            "--repeats",
            "1",
            "--no-progress",
        ],
    )
    line = _one_line_error(result)
    assert "--encoder-weights imagenet" in line and "resnet34" in line and "--encoder-weights none" in line
