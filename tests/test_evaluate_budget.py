"""The training budget of `evaluate`: equal optimiser steps (the default), convergence with patience,
the thesis' fixed epochs, and the under-trained warning (tiny networks, 32 px, no pretrained weights)."""

from __future__ import annotations

import csv
import itertools
import json
import logging

import pytest
import torch

from defectsynth.cli import app
from defectsynth.data import Dataset
from defectsynth.evaluation import evaluate, training
from defectsynth.evaluation.data import PairCache
from defectsynth.evaluation.training import (
    TrainConfig,
    is_under_trained,
    steps_per_epoch,
    train_model,
    validation_steps,
)

TINY = {
    "models": ["unet"],
    "encoder": "mobilenet_v2",
    "encoder_weights": None,
    "size": 32,
    "batch_size": 4,
    "repeats": 1,
    "model_kwargs": {"encoder_depth": 3, "decoder_channels": [16, 8, 8]},
    "progress": False,
}
MIXES = ["R=all,S=0", "R=all,S=R"]
TINY_CONFIG = dict(
    encoder="mobilenet_v2",
    encoder_weights=None,
    batch_size=4,
    lr=1e-3,
    model_kwargs=(("encoder_depth", 3), ("decoder_channels", (16, 8, 8))),
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def counted_steps(monkeypatch):
    """Optimiser steps per trained cell, counted at training.train_step: [(number of training pairs, steps), ...]."""
    cells: list[list[int]] = []
    real_step, real_run = training.train_step, training.run_cell

    def step(*args, **kwargs):
        cells[-1][1] += 1
        return real_step(*args, **kwargs)

    def run(arch, classes, train, *args, **kwargs):
        cells.append([len(train), 0])
        return real_run(arch, classes, train, *args, **kwargs)

    monkeypatch.setattr(training, "train_step", step)
    monkeypatch.setattr("defectsynth.evaluation.run_cell", run)
    return cells


def _history(out, key: str) -> list[dict]:
    return json.loads((out / "cells" / f"{key}.json").read_text())["history"]


def _scripted_validation(monkeypatch, scores):
    """Validation mIoU taken from the iterator ``scores`` instead of the network (test scoring is untouched)."""
    monkeypatch.setattr(
        training, "reduce_stats", lambda *stats, **kw: {"iou": {"macro_imagewise": float(next(scores))}}
    )


@pytest.mark.slow
def test_budget_steps_gives_mixes_of_different_sizes_the_same_optimiser_steps(
    toy_dataset, synthetic, tmp_path, counted_steps
):
    report = evaluate(toy_dataset, tmp_path / "steps", synthetic=[synthetic], epochs=2, mix=MIXES, **TINY)
    n_real = report["config"]["splits"]["train"]
    budget = 2 * steps_per_epoch(n_real, 4)  # --epochs x one epoch of the real-only mix
    assert counted_steps == [[n_real, budget], [2 * n_real, budget]]
    base, mixed = report["cells"]
    assert base["steps"] == mixed["steps"] == budget and report["config"]["protocol"]["steps"] == budget
    assert base["epochs"] == 2 and mixed["epochs"] == pytest.approx(
        budget / steps_per_epoch(2 * n_real, 4)
    )  # about half the epochs
    at = [
        [h["step"] for h in _history(tmp_path / "steps", key)]
        for key in ("unet__R-all_S-0__real__r0", "unet__R-all_S-R__synth__r0")
    ]
    assert at[0] == at[1] == [budget // 2, budget]  # validated and selected at the same step counts
    assert report["budget"].startswith(f"budget steps: {budget} optimiser steps")


@pytest.mark.slow
def test_budget_epochs_is_the_thesis_protocol_and_agrees_with_steps_on_the_real_only_mix(
    toy_dataset, synthetic, tmp_path, counted_steps
):
    steps = evaluate(toy_dataset, tmp_path / "steps", synthetic=[synthetic], epochs=2, mix=MIXES, **TINY)
    counted_steps.clear()
    epochs = evaluate(
        toy_dataset, tmp_path / "epochs", synthetic=[synthetic], epochs=2, mix=MIXES, budget="epochs", **TINY
    )
    n_real = epochs["config"]["splits"]["train"]
    # every mix does 2 passes over its own pairs: the larger mix gets twice the steps
    assert counted_steps == [[n_real, 2 * steps_per_epoch(n_real, 4)], [2 * n_real, 2 * steps_per_epoch(2 * n_real, 4)]]
    assert [c["epochs"] for c in epochs["cells"]] == [2, 2] and epochs["config"]["protocol"]["steps"] is None
    # the real-only mix trains the same steps either way, so its network is the same
    key = "unet__R-all_S-0__real__r0"
    assert _history(tmp_path / "steps", key) == _history(tmp_path / "epochs", key)
    assert steps["cells"][0]["scores"] == epochs["cells"][0]["scores"]


def test_validation_steps_per_budget():
    config = TrainConfig(**TINY_CONFIG, epochs=3)
    assert validation_steps(config, 13) == [
        3,
        6,
        9,
    ]  # 13 pairs, batch 4: 3 steps per epoch (last partial batch dropped)
    assert validation_steps(TrainConfig(**TINY_CONFIG, epochs=3, budget="steps", steps=7), 100) == [3, 5, 7]
    assert validation_steps(TrainConfig(**TINY_CONFIG, epochs=5, budget="steps", steps=2), 100) == [1, 2]
    assert validation_steps(TrainConfig(**TINY_CONFIG, epochs=3, budget="converge", patience=2), 4) == [1, 2, 3]


@pytest.mark.slow
def test_converge_stops_after_patience_epochs_without_a_better_score(toy_dataset, monkeypatch):
    ds = Dataset(toy_dataset)
    cache = PairCache((32, 32))
    train, val = cache.pairs(ds, ds.split("train")), cache.pairs(ds, ds.split("val"))
    per_epoch = steps_per_epoch(len(train), 4)
    _scripted_validation(monkeypatch, iter([0.1, 0.5, 0.4, 0.3, 0.2, 0.9, 0.9, 0.9, 0.9, 0.9]))
    config = TrainConfig(**TINY_CONFIG, epochs=10, budget="converge", patience=3)
    _, selection = train_model("unet", 5, train, val, config, seed=0, device=torch.device("cpu"))
    assert len(selection["history"]) == 5  # best at epoch 1, then 3 epochs without improvement
    assert (selection["best_epoch"], selection["best_step"]) == (1, 2 * per_epoch)
    assert (selection["steps"], selection["epochs"], selection["under_trained"]) == (5 * per_epoch, 5, False)
    # a score that keeps improving trains to the cap and is under-trained
    _scripted_validation(monkeypatch, itertools.count())
    _, capped = train_model("unet", 5, train, val, config, seed=0, device=torch.device("cpu"))
    assert (len(capped["history"]), capped["best_epoch"], capped["under_trained"]) == (10, 9, True)


def test_under_trained_rule():
    assert is_under_trained(100, 100) and is_under_trained(91, 100)
    assert not is_under_trained(90, 100) and not is_under_trained(9, 10) and not is_under_trained(1, 3)


@pytest.mark.slow
@pytest.mark.parametrize("scores, flagged", [(itertools.count(), True), (itertools.count(0, -1), False)])
def test_under_trained_warning_and_report_flag(toy_dataset, tmp_path, monkeypatch, caplog, scores, flagged):
    _scripted_validation(monkeypatch, scores)  # rising: the best epoch is the last; falling: the first
    with caplog.at_level(logging.WARNING, logger="defectsynth.evaluation"):
        report = evaluate(toy_dataset, tmp_path / "r", epochs=3, mix=["R=all,S=0"], **TINY)
    warnings = [r.getMessage() for r in caplog.records if "under-trained" in r.getMessage()]
    cell = report["cells"][0]
    assert cell["under_trained"] is flagged and report["rows"][0]["under_trained"] == int(flagged)
    assert cell["best_epoch"] == (2 if flagged else 0)
    assert warnings == (
        [
            f"unet__R-all_S-0__real__r0: the best validation mIoU came at step {cell['steps']} of {cell['steps']} "
            "(the last 10%): "
            "under-trained, give it more --epochs or --steps"
        ]
        if flagged
        else []
    )
    with open(tmp_path / "r" / "cells.csv", newline="") as f:
        (line,) = list(csv.DictReader(f))
    assert (line["budget"], line["under_trained"], int(line["steps"])) == ("steps", str(int(flagged)), cell["steps"])


@pytest.mark.slow
def test_a_changed_budget_is_not_resumed_silently(toy_dataset, tmp_path, counted_steps):
    out = tmp_path / "r"
    evaluate(toy_dataset, out, epochs=2, mix=["R=all,S=0"], **TINY)
    evaluate(toy_dataset, out, epochs=2, mix=["R=all,S=0"], **TINY)  # same budget: resumed, nothing trained
    assert len(counted_steps) == 1
    for other in ({"budget": "epochs"}, {"budget": "converge"}, {"steps": 5}):
        with pytest.raises(Exception, match="other options .*(budget|steps)"):
            evaluate(toy_dataset, out, epochs=2, mix=["R=all,S=0"], **{**TINY, **other})
    report = evaluate(
        toy_dataset, out, epochs=2, mix=["R=all,S=0"], budget="converge", patience=1, overwrite=True, **TINY
    )
    assert len(counted_steps) == 2 and report["config"]["protocol"]["budget"] == "converge"
    assert report["config"]["protocol"]["patience"] == 1


@pytest.mark.slow
def test_cli_reports_the_budget_and_the_training_of_every_network(runner, toy_dataset, synthetic, tmp_path):
    out = tmp_path / "cli"
    result = runner.invoke(
        app,
        [
            "evaluate",
            "--real",
            str(toy_dataset),
            "--synthetic",
            str(synthetic),
            "--out",
            str(out),
            "--models",
            "unet",
            "--encoder",
            TINY["encoder"],
            "--encoder-weights",
            "none",
            "--epochs",
            "2",
            "--size",
            "32",
            "--batch-size",
            "4",
            "--repeats",
            "2",
            "--mix",
            "R=all,S=0;R=all,S=R",
            "--no-progress",
            "--model-kwargs",
            json.dumps(TINY["model_kwargs"]),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    steps = report["config"]["protocol"]["steps"]
    assert "training per network" in result.output and f"budget steps: {steps} optimiser steps" in " ".join(
        result.output.split()
    )
    assert [r["repeats"] for r in report["rows"]] == [2, 2] and all(r["miou_std"] is not None for r in report["rows"])
    with open(out / "report.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["budget"], float(r["steps_mean"])) for r in rows] == [("steps", steps)] * 2
    with open(out / "cells.csv", newline="") as f:
        assert [int(c["steps"]) for c in csv.DictReader(f)] == [steps] * 4
    md = (out / "report.md").read_text()
    assert report["budget"] in md and "## training" in md
