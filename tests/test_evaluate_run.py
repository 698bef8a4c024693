"""End-to-end runs of the benchmark with a tiny network (32 px, 1-2 epochs, no pretrained weights)."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
import torch
from _launch import two_cpu_processes

from defectsynth.cli import app
from defectsynth.data import Dataset
from defectsynth.data.prepare import prepare
from defectsynth.evaluation import evaluate, training
from defectsynth.evaluation.data import PairCache
from defectsynth.evaluation.training import TrainConfig, run_cell
from defectsynth.formats.segmenter import load_model
from defectsynth.metrics.segmentation import reduce_stats

TINY = {
    "encoder": "mobilenet_v2",
    "encoder_weights": None,
    "size": 32,
    "batch_size": 4,
    "model_kwargs": {"encoder_depth": 3, "decoder_channels": [16, 8, 8]},
    "progress": False,
}
MIXES = ["R=all,S=0", "R=all,S=R", "R=0,S=all"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def finished(tmp_path_factory, toy_dataset, synthetic):
    out = tmp_path_factory.mktemp("report") / "report"
    report = evaluate(toy_dataset, out, synthetic=[synthetic], models=["unet"], epochs=1, repeats=1, mix=MIXES, **TINY)
    return out, report


def test_report_files_and_chart(finished):
    out, report = finished
    for name in ("report.json", "report.csv", "report.md", "config.json", "chart_unet.png"):
        assert (out / name).is_file(), name
    chart = cv2.imread(str(out / "chart_unet.png"))
    assert chart is not None and chart.shape[0] > 200 and chart.std() > 10
    assert [r["mix"] for r in report["rows"]] == MIXES
    assert report == json.loads((out / "report.json").read_text())
    csv_lines = (out / "report.csv").read_text().splitlines()
    assert len(csv_lines) == 1 + len(MIXES) and csv_lines[0].startswith("model,synthetic,mix,n_real,n_synthetic")
    md = (out / "report.md").read_text()
    assert "## unet" in md and "| R=all,S=R |" in md
    assert len(list((out / "cells").glob("*.json"))) == len(MIXES)


def test_report_numbers_come_from_the_stored_counts(finished, toy_dataset):
    out, report = finished
    splits = report["config"]["splits"]
    assert splits["train"] + splits["val"] == len(Dataset(toy_dataset).split("train"))
    base, same, synth_only = report["rows"]
    assert (base["n_real"], base["n_synthetic"]) == (splits["train"], 0)
    assert (same["n_real"], same["n_synthetic"]) == (splits["train"], splits["train"])
    assert (synth_only["n_real"], synth_only["n_synthetic"]) == (0, 16)
    for row in report["rows"]:
        key = next(
            c["key"]
            for c in map(lambda p: json.loads(p.read_text()), (out / "cells").glob("*.json"))
            if c["mix"] == row["mix"]
        )
        cell = json.loads((out / "cells" / f"{key}.json").read_text())
        stats = [torch.tensor(cell["test_stats"][k]) for k in ("tp", "fp", "fn", "tn")]
        assert stats[0].shape == (len(Dataset(toy_dataset).split("test")), 5)
        expected = reduce_stats(*stats)
        assert row["miou_mean"] == pytest.approx(expected["iou"]["macro_imagewise"])
        assert row["miou_micro_mean"] == pytest.approx(expected["iou"]["micro"])
        assert row["f1_pooled_mean"] == pytest.approx(np.mean(expected["f1"]["per_class"][1:]))
        assert row["miou_std"] == 0.0
        base_miou = report["rows"][0]["miou_mean"]
        assert row["diff_pct"] == pytest.approx(100 * (row["miou_mean"] - base_miou) / base_miou)


@pytest.mark.slow
def test_resume_trains_only_missing_cells(finished, toy_dataset, synthetic, tmp_path, monkeypatch):
    out = tmp_path / "resumed"
    shutil.copytree(finished[0], out)
    (out / "cells" / "unet__R-all_S-R__synth__r0.json").unlink()
    calls = []
    real_run = training.run_cell

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real_run(*args, **kwargs)

    monkeypatch.setattr("defectsynth.evaluation.run_cell", counting)
    report = evaluate(toy_dataset, out, synthetic=[synthetic], models=["unet"], epochs=1, repeats=1, mix=MIXES, **TINY)
    assert calls == ["unet"]
    assert [r["miou_mean"] for r in report["rows"]][0::2] == [r["miou_mean"] for r in finished[1]["rows"]][0::2]
    # other protocol options are refused without --overwrite
    with pytest.raises(Exception, match="other options"):
        evaluate(toy_dataset, out, synthetic=[synthetic], models=["unet"], epochs=2, repeats=1, mix=MIXES, **TINY)


@pytest.mark.slow
def test_test_split_is_only_scored_after_selection(toy_dataset, monkeypatch):
    ds = Dataset(toy_dataset)
    cache = PairCache((32, 32))
    train, val, test = (cache.pairs(ds, ds.split(name)) for name in ("train", "val", "test"))
    config = TrainConfig(
        "mobilenet_v2", None, 2, 4, 1e-3, "dice", "none", (("encoder_depth", 3), ("decoder_channels", (16, 8, 8)))
    )
    seen = []
    real_eval = training.evaluate_split

    def spy(model, pairs, split, *args, **kwargs):
        seen.append(split)
        return real_eval(model, pairs, split, *args, **kwargs)

    monkeypatch.setattr(training, "evaluate_split", spy)
    first = run_cell("unet", 5, train, val, test, config, seed=1, device=torch.device("cpu"))
    assert seen == ["val", "val", "test"]
    # a different test set changes nothing about the selection
    flipped = [(img, np.where(mask == 0, 1, 0).astype(np.uint8)) for img, mask in test]
    second = run_cell("unet", 5, train, val, flipped, config, seed=1, device=torch.device("cpu"))
    assert second["best_epoch"] == first["best_epoch"] and second["history"] == first["history"]
    assert second["test_stats"] != first["test_stats"]


@pytest.mark.slow
def test_per_class_binary_and_classic_augmentation_via_cli(runner, toy_dataset, synthetic, tmp_path):
    out = tmp_path / "binary"
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
            "1",
            "--size",
            "32",
            "--batch-size",
            "4",
            "--repeats",
            "1",
            "--mix",
            "R=all,S=0",
            "--per-class-binary",
            "--augment",
            "classic",
            "--no-progress",
            "--model-kwargs",
            json.dumps(TINY["model_kwargs"]),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "mIoU" in result.output
    cells = sorted(json.loads(p.read_text())["binary_class"] for p in (out / "cells").glob("*.json"))
    assert cells == [1, 2, 3, 4]
    report = json.loads((out / "report.json").read_text())
    row = report["rows"][0]
    assert row["iou_per_class"]["background"] is None and all(
        row["iou_per_class"][c] is not None for c in ("scratch", "spot", "crack", "stain")
    )
    assert row["miou_mean"] == pytest.approx(
        np.mean([row["iou_per_class"][c] for c in ("scratch", "spot", "crack", "stain")])
    )
    assert (
        report["config"]["protocol"]["augment"] == "classic"
        and report["config"]["protocol"]["per_class_binary"] is True
    )


@pytest.mark.slow
def test_saved_networks_reproduce_the_test_counts_and_feed_filter(
    runner, toy_dataset, synthetic, tmp_path, monkeypatch
):
    out = tmp_path / "saved"
    evaluate(toy_dataset, out, models=["unet"], epochs=1, repeats=1, mix=["R=all,S=0"], save_models=True, **TINY)
    (cell,) = [json.loads(p.read_text()) for p in (out / "cells").glob("*.json")]
    folder = out / "models" / cell["key"]
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    # the saved weights are the selected ones: they give the stored test counts again
    ds = Dataset(toy_dataset)
    net = load_model(folder)
    config = TrainConfig(TINY["encoder"], None, 1, 4)
    tp, fp, fn, tn = training.evaluate_split(
        net, PairCache((32, 32)).pairs(ds, ds.split("test")), "test", 5, config, "cpu", None
    )
    assert cell["test_stats"] == {"tp": tp.tolist(), "fp": fp.tolist(), "fn": fn.tolist(), "tn": tn.tolist()}
    # filter --by segmenter --model takes the network evaluate saved
    kept = tmp_path / "kept"
    result = runner.invoke(app, ["filter", str(synthetic), "--out", str(kept), "--by", "segmenter",
                                 "--segmenter", str(folder), "--top-k", "3", "--size", "32", "--device", "cpu",
                                 "--no-progress"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(Dataset(kept).stems) == 3 and Dataset(kept).manifest.source["filters"][-1]["options"]["model"] == str(
        folder.resolve()
    )
    # a finished cell whose network is missing is trained again
    shutil.rmtree(folder)
    calls = []
    real_run = training.run_cell
    monkeypatch.setattr("defectsynth.evaluation.run_cell", lambda *a, **k: calls.append(a[0]) or real_run(*a, **k))
    evaluate(toy_dataset, out, models=["unet"], epochs=1, repeats=1, mix=["R=all,S=0"], save_models=True, **TINY)
    assert calls == ["unet"] and (folder / "model.safetensors").is_file()


@pytest.mark.slow
def test_cells_are_shared_over_two_processes(toy_dataset, synthetic, tmp_path):
    """`accelerate launch` with two processes (gloo on the CPU): each trains half of the cells."""
    import subprocess

    out = tmp_path / "two"
    launch, env = two_cpu_processes()
    command = [
        "-m",
        "defectsynth",
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
        "1",
        "--size",
        "32",
        "--batch-size",
        "4",
        "--repeats",
        "2",
        "--mix",
        "R=all,S=0;R=0,S=all",
        "--no-progress",
        "--model-kwargs",
        json.dumps(TINY["model_kwargs"]),
    ]
    done = subprocess.run(launch + command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    cells = [json.loads(p.read_text()) for p in (out / "cells").glob("*.json")]
    assert len(cells) == 4 and sorted(c["process"] for c in cells) == [0, 0, 1, 1]
    report = json.loads((out / "report.json").read_text())
    assert [r["repeats"] for r in report["rows"]] == [2, 2]
    # the same cells and report rows as one process (the scores may differ in the last bits: threads)
    evaluate(
        toy_dataset,
        tmp_path / "one",
        synthetic=[synthetic],
        models=["unet"],
        epochs=1,
        repeats=2,
        mix=["R=all,S=0", "R=0,S=all"],
        **TINY,
    )
    one = json.loads((tmp_path / "one" / "report.json").read_text())
    assert sorted(p.name for p in (tmp_path / "one" / "cells").glob("*.json")) == sorted(
        p.name for p in (out / "cells").glob("*.json")
    )
    identity = ("model", "synthetic", "mix", "repeats")
    assert [{k: r.get(k) for k in identity} for r in one["rows"]] == [
        {k: r.get(k) for k in identity} for r in report["rows"]
    ]


@pytest.mark.slow
def test_resume_redoes_a_cell_whose_synthetic_data_changed(finished, toy_dataset, tmp_path, monkeypatch):
    out = tmp_path / "changed"
    shutil.copytree(finished[0], out)
    other = tmp_path / "synth"  # same source name, another folder: the synthetic cells must be retrained
    prepare("toy", other, num=16, size="32", seed=10)
    calls = []
    monkeypatch.setattr(
        "defectsynth.evaluation.run_cell", lambda *a, **k: calls.append(a[0]) or training.run_cell(*a, **k)
    )
    evaluate(toy_dataset, out, synthetic=[other], models=["unet"], epochs=1, repeats=1, mix=MIXES, **TINY)
    assert calls == ["unet", "unet"]
