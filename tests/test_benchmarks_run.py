"""benchmarks/run.py end to end on its cheapest benchmark: JSON and table written, the rest marked skipped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_run_writes_results_json_and_table(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "run.py"),
            "--quick",
            "--only",
            "filter_balance",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["quick"] and results["device"]["cpu"] and results["device"]["cpu_count"] >= 1
    row = results["benchmarks"]["filter_balance"]
    assert row["status"] == "ok" and row["result"]["box_checks_masks_per_s"] > 0 and row["peak_rss_mib"] > 0
    assert row["result"]["memory"]["peak_rss_mib"] > 0
    assert results["benchmarks"]["box_fidelity"]["status"] == "skipped in --quick"
    assert results["benchmarks"]["train_throughput"]["status"] == "skipped"
    table = (tmp_path / "results.md").read_text()
    assert "| filter_balance | ok |" in table and results["device"]["cpu"] in table


# -- benchmarks/fidelity.py: its pure helpers (the whole benchmark takes minutes, see docs/benchmarks.md) --
def _fidelity():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import fidelity
    finally:
        sys.path.pop(0)
    return fidelity


def _row(mix, miou, std, crack, n_syn):
    return {
        "model": "unet",
        "mix": mix,
        "miou_mean": miou,
        "miou_std": std,
        "repeats": 2,
        "n_real": 0 if mix == "R=0,S=R" else 40,
        "n_synthetic": n_syn,
        "iou_per_class": {"background": 0.9, "crack": crack},
    }


def test_fidelity_summary_reads_the_evaluate_report():
    fidelity = _fidelity()
    report = {
        "config": {"protocol": {"epochs": 5}},
        "classes": ["background", "crack"],
        "rows": [
            _row("R=all,S=0", 0.5, 0.02, 0.2, 0),
            _row("R=0,S=R", 0.4, 0.05, 0.1, 40),
            _row("R=all,S=R", 0.55, 0.01, 0.25, 40),
        ],
        "cells": [
            {"model": "unet", "mix": m, "best_epoch": e}
            for m, e in (("R=all,S=0", 4), ("R=all,S=0", 3), ("R=0,S=R", 1), ("R=0,S=R", 2))
        ],
    }
    summary = fidelity.tstr_summary(report)
    assert summary["synthetic_only_ratio"] == pytest.approx(0.8) and summary[
        "real_plus_synthetic_ratio"
    ] == pytest.approx(1.1)
    assert summary["budget"] == "epochs"  # evaluate reports without a budget ran fixed epochs
    assert summary["mixes"]["R=0,S=R"]["defect_iou"] == {"crack": 0.1} and summary["mixes"]["R=all,S=0"][
        "best_epochs"
    ] == [4, 3]
    report["config"]["protocol"]["budget"] = "steps"
    report["rows"][0]["miou_mean"] = 0.0
    summary = fidelity.tstr_summary(report)
    assert summary["budget"] == "steps" and summary["synthetic_only_ratio"] is None


def test_fidelity_first_checkpoint_reaching_the_target():
    fidelity = _fidelity()
    curve = [
        {"step": 300, "synthetic_only_ratio": 0.85},
        {"step": 100, "synthetic_only_ratio": None},
        {"step": 200, "synthetic_only_ratio": 0.79},
    ]
    assert fidelity.first_reaching(curve)["step"] == 300
    assert fidelity.first_reaching(curve, target=0.7)["step"] == 200
    assert fidelity.first_reaching(curve, target=0.9) is None


def test_fidelity_checkpoint_run_samples_the_checkpoint_weights(tmp_path):
    fidelity = _fidelity()
    run = tmp_path / "run"
    (run / "unet_ema").mkdir(parents=True)
    (run / "run.json").write_text('{"format": 1}')
    (run / "unet_ema" / "config.json").write_text('{"_class_name": "UNet2DModel"}')
    for step, names in ((10, ("model", "ema")), (20, ("model",))):
        folder = run / f"checkpoint-{step}"
        folder.mkdir()
        (folder / "trainer.json").write_text("{}")
        for name in names:
            (folder / f"{name}.safetensors").write_bytes(f"{name}-{step}".encode())
    (run / "checkpoint-30").mkdir()  # no trainer.json: incomplete, not listed
    assert [step for step, _ in fidelity.checkpoints(run)] == [10, 20]
    for step, expected in ((10, b"ema-10"), (20, b"model-20")):
        view = fidelity.checkpoint_run(run, run / f"checkpoint-{step}", tmp_path / f"view-{step}")
        assert (view / "unet_ema" / "diffusion_pytorch_model.safetensors").read_bytes() == expected
        assert (view / "run.json").read_text() == '{"format": 1}' and (view / "unet_ema" / "config.json").is_file()


def test_fidelity_preview_pairs_real_and_synthetic_rows(tmp_path):
    from _metrics_data import random_images, write_dataset

    from defectsynth.data.files import read_image

    fidelity = _fidelity()
    real = write_dataset(tmp_path / "real", random_images(3, 16, seed=0))
    syn = write_dataset(
        tmp_path / "syn",
        random_images(2, 16, seed=1, prefix="s"),
        synthetic=True,
        source={"condition_of": {"s00": "img02", "s01": "img00"}},
    )
    grid = read_image(fidelity.preview(real, syn, tmp_path / "preview.png"))
    scale = 128 // 16
    assert grid.shape == ((2 * 16 + 2) * scale, (6 * 16 + 4) * scale, 3)
    first_real = read_image(real / "images" / "img02.png")
    assert (grid[: 16 * scale : scale, : 16 * scale : scale] == first_real).all()


def test_fidelity_without_real_data_skips_cleanly(tmp_path):
    env = {**os.environ, "DEFECTSYNTH_CRACKFOREST": str(tmp_path / "absent"), "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "fidelity.py"),
            "--out",
            str(tmp_path / "w"),
            "--json",
            str(tmp_path / "f.json"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (
        "no real data" in done.stdout
        and json.loads((tmp_path / "f.json").read_text())["status"] == "skipped: no real data"
    )


def test_fidelity_checkpoints_of_a_given_run_need_the_run(monkeypatch, tmp_path):
    fidelity = _fidelity()
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # parse_args imports the benchmarks' _results
    monkeypatch.setattr(sys, "argv", ["fidelity.py", "--toy", "--checkpoints"])
    with pytest.raises(SystemExit) as exit_info:
        fidelity.parse_args()
    assert exit_info.value.code == 2
    monkeypatch.setattr(sys, "argv", ["fidelity.py", "--toy", "--run", str(tmp_path), "--checkpoints"])
    a = fidelity.parse_args()
    assert a.checkpoints and a.every is None and a.run == tmp_path


def test_inpaint_copy_paste_skips_the_boxes_placement_left_out(monkeypatch, tmp_path):
    from defectsynth.data import Box, Dataset, DatasetWriter, Manifest, Sample
    from defectsynth.data.prepare import prepare

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import inpaint

    real = tmp_path / "real"
    prepare("toy", real, num=8, size="32", seed=1, split_fractions="1")
    src = Dataset(real)
    samples = sorted((src.read(s) for s in src.stems), key=lambda s: len(s.boxes))
    target, condition = samples[0], samples[-1]  # the condition with the most boxes
    assert len(condition.boxes) >= 2
    moved = [Box(b.cls, 0, 0, b.x_max - b.x_min, b.y_max - b.y_min) for b in condition.boxes[1:2]]  # box 0 left out
    source = {
        "onto_of": {"p-0": target.stem},
        "condition_of": {"p-0": condition.stem},
        "unplaced": {"p-0": [0] + list(range(2, len(condition.boxes)))},
    }
    painted = tmp_path / "painted"
    with DatasetWriter(painted, Manifest("painted", src.manifest.classes, source, synthetic=True)) as writer:
        writer.add(Sample("p-0", target.image, target.mask, target.boxes + moved))
        writer.commit()
    step = inpaint.seam_step(painted, real, 0)  # nothing painted: the output's step is the input's
    assert step["samples"] == 1 and step["output"] == step["input"]
    pasted = Dataset(inpaint.copy_paste(real, painted, tmp_path / "cp")).read("p-0")
    b, m = condition.boxes[1], moved[0]
    assert pasted.boxes == target.boxes + moved
    assert (
        pasted.image[m.y_min : m.y_max, m.x_min : m.x_max] == condition.image[b.y_min : b.y_max, b.x_min : b.x_max]
    ).all()
    assert (
        pasted.mask[m.y_min : m.y_max, m.x_min : m.x_max] == condition.mask[b.y_min : b.y_max, b.x_min : b.x_max]
    ).all()
    # a copy-paste folder written before it recorded onto_of is made again, not reused (the seam step reads it)
    manifest = tmp_path / "cp" / "dataset.json"
    old = json.loads(manifest.read_text())
    del old["source"]["onto_of"]
    manifest.write_text(json.dumps(old))
    inpaint.copy_paste(real, painted, tmp_path / "cp")
    assert Dataset(tmp_path / "cp").manifest.source["onto_of"] == {"p-0": target.stem}
