"""CLI tests of train, sample and demo: option mapping (core patched), bad input, demo smoke test."""

from __future__ import annotations

import json
from pathlib import Path
from unittest import mock

import pytest

from defectsynth.cli import app
from defectsynth.data import Dataset, Manifest
from defectsynth.data.model import make_classes


def test_train_options_map_to_the_core_function(runner, tmp_path):
    with mock.patch("defectsynth.diffusion.training.train", return_value=tmp_path) as core:
        result = runner.invoke(
            app,
            [
                "train",
                "data/toy",
                "--out",
                "runs/x",
                "--cond",
                "boxmask",
                "--target",
                "image",
                "--model",
                "tiny",
                "--size",
                "352x128",
                "--epochs",
                "3",
                "--max-steps",
                "10",
                "--batch-size",
                "2",
                "--lr",
                "1e-5",
                "--seed",
                "4",
                "--variance",
                "learned",
                "--drop-rate",
                "0.2",
                "--no-ema",
                "--ema-decay",
                "0.99",
                "--mixed-precision",
                "bf16",
                "--compile",
                "--prediction",
                "v",
                "--mask-prediction",
                "epsilon",
                "--mask-loss-weight",
                "3",
                "--min-snr-gamma",
                "5",
                "--self-cond",
                "--lr-warmup-steps",
                "7",
                "--lr-schedule",
                "cosine",
                "--channels",
                "grey",
                "--checkpoint-every",
                "5",
                "--checkpoints-total-limit",
                "3",
                "--patience-steps",
                "50",
                "--resume",
                "--finetune",
                "runs/base",
                "--split",
                "train",
                "--max-grad-norm",
                "0.5",
                "--preview-every",
                "0",
                "--no-progress",
                "--context",
                "--crop",
                "64",
                "--context-margin",
                "2",
            ],
        )
    assert result.exit_code == 0, result.output
    args, kwargs = core.call_args
    assert args == (Path("data/toy"),)
    assert kwargs == {
        "out": Path("runs/x"),
        "cond": "boxmask",
        "target": "image",
        "model": "tiny",
        "size": "352x128",
        "epochs": 3,
        "max_steps": 10,
        "batch_size": 2,
        "lr": 1e-5,
        "seed": 4,
        "variance": "learned",
        "drop_rate": 0.2,
        "ema": False,
        "ema_decay": 0.99,
        "prediction": "v",
        "mask_prediction": "epsilon",
        "mask_loss_weight": 3.0,
        "min_snr_gamma": 5.0,
        "self_cond": True,
        "lr_warmup_steps": 7,
        "lr_schedule": "cosine",
        "channels": "grey",
        "mixed_precision": "bf16",
        "compile": True,
        "checkpoint_every": 5,
        "checkpoints_total_limit": 3,
        "patience_steps": 50,
        "resume": True,
        "finetune": Path("runs/base"),
        "split": "train",
        "latent": None,
        "max_grad_norm": 0.5,
        "preview_every": 0,
        "progress": False,
        "report_to": "none",
        "flip": True,
        "weights": "best",
        "class_fill": "inside",
        "dropout": None,
        "preset": None,
        "context": True,
        "crop": 64,
        "context_margin": 2,
    }


def test_sample_batch_size_help_says_what_another_batch_size_changes(runner):
    result = runner.invoke(app, ["sample", "--help"], env={"COLUMNS": "2000"})
    assert result.exit_code == 0 and "does not change the output" not in result.output
    assert "another --batch-size changes pixels by up to one level (docs/sample.md)" in result.output


def test_sample_options_map_to_the_core_function(runner, tmp_path):
    manifest = Manifest("s", make_classes(["a"]))
    with mock.patch("defectsynth.diffusion.sampling.sample", return_value=manifest) as core:
        result = runner.invoke(
            app,
            [
                "sample",
                "runs/x",
                "--out",
                "synth",
                "--conditions",
                "data/toy:test",
                "--num",
                "7",
                "--steps",
                "300",
                "--rescale",
                "--scheduler",
                "ddpm",
                "--guidance",
                "1.5",
                "--seed",
                "3",
                "--batch-size",
                "4",
                "--no-ema",
                "--overwrite",
                "--compile",
                "--no-progress",
                "--onto",
                "data/free",
                "--placement",
                "random",
            ],
        )
    assert result.exit_code == 0, result.output
    assert core.call_args.args == (Path("runs/x"),)
    assert core.call_args.kwargs == {
        "out": Path("synth"),
        "conditions": "data/toy:test",
        "num": 7,
        "steps": 300,
        "rescale": True,
        "scheduler": "ddpm",
        "guidance": 1.5,
        "mask_augment": False,
        "seed": 3,
        "batch_size": 4,
        "ema": False,
        "overwrite": True,
        "compile": True,
        "progress": False,
        "plan": None,
        "force_guidance": False,
        "preset": None,
        "onto": "data/free",
        "placement": "random",
    }
    with mock.patch("defectsynth.diffusion.sampling.sample", return_value=manifest) as core:
        result = runner.invoke(app, ["sample", "runs/x", "--out", "synth", "--plan", "plan.json", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert core.call_args.kwargs == {
        "out": Path("synth"),
        "conditions": None,
        "num": None,
        "steps": None,
        "rescale": None,
        "scheduler": None,
        "guidance": None,
        "mask_augment": False,
        "seed": 0,
        "batch_size": 16,
        "ema": True,
        "overwrite": False,
        "compile": False,
        "progress": False,
        "plan": Path("plan.json"),
        "force_guidance": False,
        "preset": None,
        "onto": None,
        "placement": "keep",
    }  # --steps, --rescale and --guidance left to the run's defaults; the diffusion batch size where not given


@pytest.mark.parametrize(
    "args, message",
    [
        (["sample", "--out", "o"], "RUN is required with --backend diffusion"),
        (
            ["sample", "runs/x", "--out", "o", "--base", "b", "--prior", "canny"],
            "--base, --prior: only with --backend sd-adapter",
        ),
        (
            ["sample", "runs/x", "--out", "o", "--backend", "sd-adapter", "--conditions", "d", "--base", "b"],
            "takes no RUN (got runs/x)",
        ),
        (
            ["sample", "--backend", "sd-adapter", "--out", "o", "--conditions", "d"],
            "--base (an SDXL pipeline folder or Hub id) is required",
        ),
        (
            [
                "sample",
                "--backend",
                "sd-adapter",
                "--out",
                "o",
                "--conditions",
                "d",
                "--base",
                "b",
                "--num",
                "3",
                "--no-ema",
            ],
            "--num, --ema/--no-ema: only with --backend diffusion",
        ),
    ],
)
def test_sample_refuses_options_of_the_other_backend(runner, args, message):
    with (
        mock.patch("defectsynth.diffusion.sampling.sample") as diffusion,
        mock.patch("defectsynth.sd_backend.generate.sample_sd") as sd,
    ):
        result = runner.invoke(app, [*args, "--no-progress"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], lines
    assert not diffusion.called and not sd.called


def test_help_shows_examples(runner):
    for command in ("train", "sample", "demo"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0 and "Examples" in result.output, command


def test_bad_input_is_one_line_and_exit_code_2(runner, toy_dataset, tmp_path):
    result = runner.invoke(
        app, ["train", str(toy_dataset), "--out", str(tmp_path / "r"), "--drop-rate", "1.5", "--no-progress"]
    )
    assert result.exit_code == 2
    assert "--drop-rate: must lie in [0, 1)" in result.output
    result = runner.invoke(
        app,
        [
            "train",
            str(toy_dataset),
            "--out",
            str(tmp_path / "r"),
            "--model",
            "small",
            "--size",
            "18",
            "--max-steps",
            "1",
            "--no-progress",
        ],
    )
    assert result.exit_code == 2 and "--size: 18x18 must be divisible by 4" in result.output
    result = runner.invoke(app, ["sample", str(toy_dataset), "--out", str(tmp_path / "s"), "--no-progress"])
    assert result.exit_code == 2 and "not a run folder: run.json is missing" in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1


@pytest.mark.slow
def test_demo_quick_runs_every_stage(runner, tmp_path):
    out = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "--quick", "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    for name in (
        "demo.json",
        "data/dataset.json",
        "run/run.json",
        "run/unet_ema/config.json",
        "synthetic/dataset.json",
        "previews/real.png",
        "previews/synthetic.png",
        "run/previews/epoch-00001.png",
        "metrics.json",
        "filtered/dataset.json",
        "plan.json",
        "evaluate/report.json",
        "evaluate/chart_unet.png",
    ):
        assert (out / name).is_file(), name
    synth = Dataset(out / "synthetic")
    # conditioned on the train boxes, so the real test split stays unseen by every stage
    assert synth.manifest.source["conditions"]["split"] == "train"
    assert len(synth) == len(Dataset(out / "data").split("train"))
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"sae", "ebr"} and 0.0 <= metrics["ebr"]["all"] <= 1.0
    assert "SAE" in result.output and "mIoU" in result.output
    filtered = Dataset(out / "filtered")
    assert filtered.manifest.source["filters"][-1]["by"] == "boxes" and len(filtered) == len(synth)
    report = json.loads((out / "evaluate" / "report.json").read_text())
    assert {r["mix"] for r in report["rows"]} == {"R=all,S=0", "R=all,S=R"}
    assert json.loads((out / "demo.json").read_text())["quick"] is True
    again = runner.invoke(app, ["demo", "--quick", "--out", str(out), "--no-progress"])
    assert again.exit_code == 2 and "--overwrite" in again.output


def test_train_summary_reports_the_steps_trained_past_the_last_logged_epoch(tmp_path, capsys):
    from defectsynth.commands.train import print_run_summary

    run = tmp_path / "run"
    (run / "checkpoint-1000").mkdir(parents=True)
    line = {"epoch": 11, "step": 946, "loss": 0.31, "best": 0.29}
    (run / "log.jsonl").write_text(json.dumps(line) + "\n")
    (run / "checkpoint-1000" / "trainer.json").write_text(json.dumps({"step": 1000}))
    print_run_summary(run)
    assert "epochs 11, steps 1000 (the last whole epoch ended at step 946)" in " ".join(capsys.readouterr().out.split())
    (run / "checkpoint-1000" / "trainer.json").write_text(json.dumps({"step": 946}))
    print_run_summary(run)
    assert "epochs 11, steps 946, last loss 0.3100" in capsys.readouterr().out
