"""train --report-to (a stub tracker registered here), --config for train and sample, loss.png and the
contact sheet. Tiny models on the session toy dataset at 16 px, 2 steps; no tracker package needed."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from unittest import mock

import cv2
import numpy as np
import pytest
from accelerate.tracking import GeneralTracker

from defectsynth.cli import app
from defectsynth.config_files import read_config
from defectsynth.data.colors import class_palette
from defectsynth.diffusion import loss_curve, trackers
from defectsynth.diffusion.previews import preview_row
from defectsynth.diffusion.sampling import sample
from defectsynth.diffusion.training import train
from defectsynth.errors import MissingDependencyError, OptionError

TINY = {"model": "tiny", "size": "16", "batch_size": 9, "progress": False}  # 17 training images: 2 steps an epoch


class StubTracker(GeneralTracker):
    """Records what Accelerate hands a tracker."""

    name = "stub"
    requires_logging_directory = False
    main_process_only = True

    def __init__(self):
        super().__init__()
        self.config, self.logged, self.images, self.finished = None, [], [], False

    @property
    def tracker(self):
        return self

    def store_init_configuration(self, values):
        self.config = dict(values)

    def log(self, values, step=None, **kwargs):
        self.logged.append((step, dict(values)))

    def log_images(self, values, step=None, **kwargs):
        self.images.append((step, {k: [np.asarray(i) for i in v] for k, v in values.items()}))

    def finish(self):
        self.finished = True


@pytest.fixture(scope="module")
def tracked(toy_dataset, tmp_path_factory, one_thread):
    """A tiny run of 2 epochs (2 steps each) reporting to the stub tracker, previews every epoch."""
    stub = StubTracker()
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(trackers.TRACKERS, "stub", trackers.TrackerKind("json", "stub", lambda out: stub))
        run = train(
            toy_dataset,
            out=tmp_path_factory.mktemp("runs") / "tracked",
            epochs=2,
            preview_every=1,
            report_to="stub",
            **TINY,
        )
    return run, stub


def _log(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]


# -- trackers ---------------------------------------------------------------------------------------
def test_every_step_logs_loss_and_lr_and_every_epoch_its_mean(tracked):
    run, stub = tracked
    epochs = _log(run)
    assert [e["step"] for e in epochs] == [2, 4]
    steps = [(step, v) for step, v in stub.logged if "loss" in v]
    assert [s for s, _ in steps] == [1, 2, 3, 4] and all(v["lr"] == 1e-4 for _, v in steps)
    for epoch, (first, second) in zip(epochs, [steps[0:2], steps[2:4]]):
        assert np.isclose(
            (first[1]["loss"] + second[1]["loss"]) / 2, epoch["loss"], rtol=1e-6
        )  # one process: the epoch mean
    assert [(s, v["epoch_loss"]) for s, v in stub.logged if "epoch_loss" in v] == [
        (e["step"], e["loss"]) for e in epochs
    ]
    assert stub.finished
    assert stub.config["report_to"] == "stub" and stub.config["max_steps"] == "None" and stub.config["lr"] == 1e-4


def test_preview_grids_reach_the_tracker_as_images(tracked):
    run, stub = tracked
    assert [step for step, _ in stub.images] == [2, 4]
    logged = stub.images[-1][1]["preview"][0]
    written = cv2.cvtColor(cv2.imread(str(run / "previews" / "epoch-00002.png")), cv2.COLOR_BGR2RGB)
    assert logged.dtype == np.uint8 and np.array_equal(logged, written)


@pytest.mark.parametrize("name", ["tensorboard", "wandb"])
def test_a_missing_tracker_package_is_one_line_and_nothing_is_written(toy_dataset, tmp_path, runner, monkeypatch, name):
    monkeypatch.setitem(sys.modules, name, None)  # import fails as if it were not installed
    with pytest.raises(
        MissingDependencyError,
        match=rf"^--report-to {name}: the {name} package is not installed; pip install 'defectsynth\[{name}\]'",
    ):
        train(toy_dataset, out=tmp_path / "run", report_to=name, **TINY)
    result = runner.invoke(app, ["train", str(toy_dataset), "--out", str(tmp_path / "run"), "--report-to", name])
    assert (
        result.exit_code == 2
        and len(result.output.strip().splitlines()) == 1
        and f"defectsynth[{name}]" in result.output
    )
    assert not (tmp_path / "run").exists()


def test_report_to_reaches_train_and_unknown_trackers_are_refused(toy_dataset, tmp_path, runner):
    with mock.patch("defectsynth.diffusion.training.train", return_value=tmp_path) as core:
        assert runner.invoke(app, ["train", str(toy_dataset), "--out", str(tmp_path / "r")]).exit_code == 0
        assert core.call_args.kwargs["report_to"] == "none"
        assert (
            runner.invoke(
                app, ["train", str(toy_dataset), "--out", str(tmp_path / "r"), "--report-to", "wandb"]
            ).exit_code
            == 0
        )
        assert core.call_args.kwargs["report_to"] == "wandb"
    with pytest.raises(OptionError, match="--report-to must be one of none, tensorboard, wandb, got 'mlflow'"):
        train(toy_dataset, out=tmp_path / "x", report_to="mlflow", **TINY)


def test_tensorboard_when_installed(toy_dataset, tmp_path, one_thread):
    """The real tracker (skipped where tensorboard is not installed; it is optional)."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = train(toy_dataset, out=tmp_path / "run", epochs=1, preview_every=1, report_to="tensorboard", **TINY)
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("loss")] == [1, 2] and [e.step for e in events.Scalars("epoch_loss")] == [2]
    assert np.isclose(events.Scalars("epoch_loss")[0].value, _log(run)[0]["loss"], rtol=1e-6)
    assert [(e.step, e.width) for e in events.Images("preview")] == [(2, 384)]


# -- loss.png ---------------------------------------------------------------------------------------
def test_the_run_folder_holds_its_loss_curve(tracked):
    run, _ = tracked
    image = cv2.imread(str(run / "loss.png"))
    assert image is not None and image.shape == (360, 640, 3)
    assert not list(run.glob(".loss.png*"))  # written atomically: no temporary file left


def test_loss_curve_redraws_at_most_every_so_often_and_always_at_the_end(tmp_path, monkeypatch):
    drawn = []
    monkeypatch.setattr(loss_curve, "write_loss_curve", lambda run: drawn.append(run))
    curve = loss_curve.LossCurve(tmp_path, every=3600)
    curve.finish()
    assert drawn == []  # nothing logged yet
    curve.update()
    curve.update()
    assert len(drawn) == 1  # the first epoch at once, the second waits
    curve.finish()
    curve.finish()
    assert len(drawn) == 2


def test_read_log_skips_half_a_line(tmp_path):
    (tmp_path / "log.jsonl").write_text('{"step": 2, "epoch": 1, "loss": 0.5, "lr": 0.1}\n{"step": 4, "ep')
    assert [e["step"] for e in loss_curve.read_log(tmp_path / "log.jsonl")] == [2]
    assert loss_curve.write_loss_curve(tmp_path) == tmp_path / "loss.png"
    assert loss_curve.write_loss_curve(tmp_path / "nothing") is None


# -- the contact sheet ------------------------------------------------------------------------------
def test_sample_writes_a_contact_sheet_of_the_first_samples(tracked, tmp_path):
    from defectsynth.data import Dataset

    run, _ = tracked
    out = tmp_path / "synth"
    sample(run, out=out, num=5, scheduler="ddim", steps=2, batch_size=5)
    sheet = cv2.cvtColor(cv2.imread(str(out / "previews" / "contact-sheet.png")), cv2.COLOR_BGR2RGB)
    # 5 rows of 16 px panels, viewing scale 8: 2 columns of 3 rows, 2-px gaps scaled to 16
    assert sheet.shape == (3 * 128 + 2 * 16, 2 * 384 + 16, 3)
    ds = Dataset(out)
    first = ds.read(ds.stems[0])
    row = preview_row(first.image, first.mask, first.boxes, class_palette(ds.manifest.classes))
    assert np.array_equal(sheet[:128:8, :384:8], row)
    fourth = ds.read(ds.stems[3])  # read down, then across: the 4th sample tops the second column
    row = preview_row(fourth.image, fourth.mask, fourth.boxes, class_palette(ds.manifest.classes))
    assert np.array_equal(sheet[:128:8, 400::8], row)
    assert (sheet[128 * 2 + 32 :, 400:] == 255).all()  # the 6th place is empty


# -- --config ---------------------------------------------------------------------------------------
def test_train_config_fills_what_the_command_line_leaves_out(toy_dataset, tmp_path, runner):
    config = tmp_path / "train.toml"
    config.write_text(
        f'dataset = "{toy_dataset}"\nmodel = "tiny"\nbatch_size = 3\nlr = 0.5\nmax-steps = 7\nema = false\n'
    )
    with mock.patch("defectsynth.diffusion.training.train", return_value=tmp_path) as core:
        result = runner.invoke(app, ["train", "--config", str(config), "--out", str(tmp_path / "r"), "--lr", "0.25"])
    assert result.exit_code == 0, result.output
    (dataset,), kwargs = core.call_args
    assert dataset == toy_dataset and kwargs["out"] == tmp_path / "r"
    assert (kwargs["model"], kwargs["batch_size"], kwargs["lr"], kwargs["max_steps"], kwargs["ema"]) == (
        "tiny",
        3,
        0.25,
        7,
        False,
    )
    assert kwargs["epochs"] == 500  # neither given: the default


def test_sample_config_in_yaml(tmp_path, runner):
    pytest.importorskip("yaml")
    config = tmp_path / "sample.yaml"
    config.write_text("run: runs/toy\nscheduler: ddim\nsteps: 5\nbatch-size: 4\n")
    with mock.patch("defectsynth.diffusion.sampling.sample") as core:
        core.return_value.stats = {}
        result = runner.invoke(app, ["sample", "--config", str(config), "--out", str(tmp_path / "s"), "--steps", "7"])
    assert result.exit_code == 0, result.output
    (run,), kwargs = core.call_args
    assert run == Path("runs/toy") and (kwargs["scheduler"], kwargs["steps"], kwargs["batch_size"]) == ("ddim", 7, 4)


@pytest.mark.parametrize(
    "name, text, message",
    [
        (
            "c.toml",
            "epochs = 3\nbogus_key = 1\n",
            "--config {path}: unknown key 'bogus_key': train has no option --bogus-key",
        ),
        ("c.toml", 'cond = "zzz"\n', "--config {path}: key 'cond': Invalid value for '--cond'"),
        ("c.toml", "epochs = 2\n[more]\nlr = 1\n", "{path}: key 'more': a config file is one flat table of options"),
        ("c.toml", "epochs = \n", "{path}: malformed TOML"),
        (
            "c.json",
            '{"lr": 1, "lr": 2, "batch-size": 2, "batch_size": 3}',
            "{path}: option 'batch_size' is given twice",
        ),
        ("c.json", "[1, 2]", "{path}: a config file holds one table of options, not a list"),
        ("c.ini", "lr = 1\n", "--config: {path}: expected a .toml, .yaml, .yml or .json file"),
    ],
)
def test_bad_config_files_are_one_line(toy_dataset, tmp_path, runner, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with mock.patch("defectsynth.diffusion.training.train") as core:
        result = runner.invoke(app, ["train", str(toy_dataset), "--out", str(tmp_path / "r"), "--config", str(path)])
    assert result.exit_code == 2 and not core.called
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message.format(path=path) in lines[0], result.output


def test_yaml_without_pyyaml_is_a_clear_error(tmp_path, monkeypatch):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 3\n")
    monkeypatch.setitem(sys.modules, "yaml", None)
    with pytest.raises(
        MissingDependencyError, match=r"c\.yaml: reading YAML needs PyYAML: pip install pyyaml \(or use a TOML file\)$"
    ):
        read_config(path)


@pytest.mark.slow
def test_run_json_args_replay_the_run(toy_dataset, tmp_path, runner, one_thread):
    """train -> run.json's args -> train --config run.json: the same arguments (and the same losses)."""
    first, second = tmp_path / "first", tmp_path / "second"
    options = ["--model", "tiny", "--size", "16", "--batch-size", "9", "--max-steps", "2", "--lr", "0.002",
               "--seed", "3", "--preview-every", "0", "--no-self-cond", "--mask-loss-weight", "2",
               "--no-progress"]  # fmt: skip
    assert runner.invoke(app, ["train", str(toy_dataset), "--out", str(first), *options]).exit_code == 0
    result = runner.invoke(app, ["train", "--config", str(first / "run.json"), "--out", str(second), "--no-progress"])
    assert result.exit_code == 0, result.output
    a, b = (json.loads((run / "run.json").read_text())["args"] for run in (first, second))
    assert {**a, "out": None} == {**b, "out": None} and b["out"] == str(second)
    assert a["lr"] == 0.002 and a["self_cond"] is False and a["mask_loss_weight"] == 2.0
    assert [e["loss"] for e in _log(first)] == [e["loss"] for e in _log(second)]


def test_read_config_from_python_drops_what_old_run_json_files_recorded_beside_the_options(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(
        json.dumps({"format": 1, "args": {"lr": 0.1, "mode_defaults": {"prediction": "sample"}}, "classes": []})
    )
    assert read_config(path) == {"lr": 0.1}
