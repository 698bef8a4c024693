"""The demo's verdict: the paired mIoU difference of R=all,S=R against R=all,S=0, hand-computed cases;
and the example scripts train with the demo's settings."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from defectsynth.commands.demo import verdict_lines
from defectsynth.toy_demo import SETTINGS, verdict


def _report(base, mixed):
    cells = [
        {"mix": mix, "repeat": r, "scores": {"miou": v}}
        for mix, values in (("R=all,S=0", base), ("R=all,S=R", mixed))
        for r, v in enumerate(values)
    ]
    return {
        "budget": "budget steps: 120 optimiser steps per network whatever its mix, validated 15 times",
        "cells": cells,
    }


def test_a_loss_in_every_repeat():
    answer = verdict(_report([0.60, 0.70], [0.50, 0.64]))
    assert answer["difference"]["per_repeat"] == pytest.approx([-0.10, -0.06])
    assert answer["difference"]["mean"] == pytest.approx(-0.08) and answer["difference"]["std"] == pytest.approx(0.02)
    assert answer["difference"]["relative_pct"] == pytest.approx(-0.08 / 0.65 * 100)
    assert (answer["baseline"]["mean"], answer["baseline"]["std"]) == pytest.approx((0.65, 0.05))
    assert (answer["direction"], answer["every_repeat"], answer["repeats"]) == ("loss", True, 2)
    first, second = verdict_lines(answer)
    assert first.startswith(
        "verdict: mIoU R=all,S=0 (real only) 0.650 ± 0.050, R=all,S=R (real + synthetic) 0.570 ± 0.070, over 2 "
        "repeats; budget steps"
    )
    assert second == (
        "verdict: adding the synthetic data changed mIoU by -0.080 ± 0.020 (-12.3%) (per repeat -0.100, "
        "-0.060): a loss in every repeat"
    )


def test_a_gain_on_average_that_the_repeats_do_not_agree_on():
    answer = verdict(_report([0.5, 0.5, 0.5], [0.6, 0.45, 0.55]))
    assert answer["difference"]["mean"] == pytest.approx(0.1 / 3) and (answer["direction"], answer["every_repeat"]) == (
        "gain",
        False,
    )
    assert verdict_lines(answer)[1].endswith(
        "a gain on average, but not in every repeat: within the spread, not a clear difference"
    )


def _cli_train_options(script: str) -> dict[str, str]:
    """The ``--option value`` pairs of the ``defectsynth train`` line (with its continuation) in ``script``."""
    text = script.replace("\\\n", " ")
    line = next(row for row in text.splitlines() if row.startswith("defectsynth train "))
    words = line.split()
    return {w[2:].replace("-", "_"): v for w, v in zip(words, words[1:]) if w.startswith("--")}


def _api_train_options(source: str) -> dict[str, object]:
    """The keyword arguments of the ``defectsynth.train(...)`` call in ``source`` (literals only)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "train":
            return {k.arg: ast.literal_eval(k.value) for k in node.keywords if isinstance(k.value, ast.Constant)}
    raise AssertionError("no defectsynth.train call")


def test_the_example_scripts_train_what_the_demo_trains():
    examples = Path(__file__).resolve().parents[1] / "examples"
    settings = {k: v for k, v in SETTINGS["full"]["train"].items() if k != "epochs"}
    cli = _cli_train_options((examples / "cli" / "demo.sh").read_text())
    api = _api_train_options((examples / "api" / "demo.py").read_text())
    for name, value in settings.items():
        assert type(value)(cli[name]) == value, (name, cli[name], value)  # the flag's text read as the setting's type
        assert api[name] == value, (name, api[name], value)
