"""The stages (defectsynth.stages): ``defectsynth.sample`` / ``defectsynth.filter_dataset`` from Python
choose the backend and its defaults exactly as the CLI does; the typed train and sample configs
round-trip through run.json / settings.json."""

from __future__ import annotations

import json
import re
from dataclasses import FrozenInstanceError, fields
from pathlib import Path
from unittest import mock

import pytest

import defectsynth
from defectsynth.cli import app
from defectsynth.data import Manifest
from defectsynth.data.files import read_json
from defectsynth.data.model import make_classes
from defectsynth.diffusion.configs import DiffusionTrainConfig, SampleConfig
from defectsynth.errors import DatasetError, OptionError


def _cli_and_python(runner, patch: str, returns, cli_args: list[str], python_call) -> tuple:
    """The (args, kwargs) the backend ``patch`` (returning ``returns``) receives from the CLI and from the Python
    call."""
    with mock.patch(patch, return_value=returns) as core:
        result = runner.invoke(app, [*cli_args, "--no-progress"])
        assert result.exit_code == 0, result.output
        from_cli = core.call_args
        python_call()
        from_python = core.call_args
    return from_cli, from_python


def test_the_api_points_at_the_stages():
    from defectsynth.stages import filter as filter_stage
    from defectsynth.stages import sample as sample_stage

    assert defectsynth.sample is sample_stage.sample and defectsynth.filter_dataset is filter_stage.filter_dataset


def test_sample_from_python_chooses_the_cli_defaults_diffusion(runner):
    cli, python = _cli_and_python(
        runner,
        "defectsynth.diffusion.sampling.sample",
        Manifest("s", make_classes(["a"])),
        ["sample", "runs/x", "--out", "synth"],
        lambda: defectsynth.sample(Path("runs/x"), out=Path("synth")),
    )
    assert python == cli
    assert (
        python.kwargs["batch_size"] == 16 and python.kwargs["scheduler"] is None and python.kwargs["steps"] is None
    )  # scheduler and steps: the run's (default_scheduler, run_defaults)


def test_sample_from_python_chooses_the_cli_defaults_sd_adapter(runner, toy_dataset):
    cli, python = _cli_and_python(
        runner,
        "defectsynth.sd_backend.generate.sample_sd",
        toy_dataset,
        ["sample", "--backend", "sd-adapter", "--conditions", "d", "--out", "o", "--base", "b"],
        lambda: defectsynth.sample(backend="sd-adapter", conditions="d", out=Path("o"), base=Path("b")),
    )
    assert python == cli
    assert {k: python.kwargs[k] for k in ("steps", "guidance", "batch_size", "prior", "blend", "resolution")} == {
        "steps": 30,
        "guidance": 7.5,
        "batch_size": 1,
        "prior": "lineart",
        "blend": "0.7,0.9",
        "resolution": 1024,
    }


@pytest.mark.parametrize(
    "call, message",
    [
        (dict(out="o"), "RUN is required with --backend diffusion"),
        (dict(run="r", out="o", base="b", prior="canny"), "--base, --prior: only with --backend sd-adapter"),
        (dict(run="r", out="o", backend="sd-adapter", base="b"), "takes no RUN (got r)"),
        (dict(out="o", backend="sd-adapter", conditions="d"), "--base (an SDXL pipeline folder or Hub id) is required"),
        (
            dict(out="o", backend="sd-adapter", base="b", num=3, ema=False),
            "--num, --ema: only with --backend diffusion",
        ),
        (dict(run="r", out="o", backend="dall-e"), "--backend: choose one of diffusion, sd-adapter, got 'dall-e'"),
    ],
)
def test_sample_from_python_refuses_what_the_cli_refuses(call, message):
    with (
        mock.patch("defectsynth.diffusion.sampling.sample") as diffusion,
        mock.patch("defectsynth.sd_backend.generate.sample_sd") as sd,
    ):
        with pytest.raises(OptionError, match=re.escape(message)):
            defectsynth.sample(**call)
    assert not diffusion.called and not sd.called


def test_a_preset_fills_only_what_the_python_call_leaves_out():
    from defectsynth.presets import applies_preset

    calls = []

    @applies_preset("sample")
    def backend(run, **kwargs):  # the diffusion backend after its preset is applied
        calls.append(kwargs)
        return Manifest("s", make_classes(["a"]))

    with mock.patch("defectsynth.diffusion.sampling.sample", backend):
        defectsynth.sample("r", out="o", preset="basd-paper")
        defectsynth.sample("r", out="o", preset="basd-paper", steps=5, ema=True)
    # the paper's 1000 steps without EMA, unless the call gives them (the stage's default ema=True is no call's)
    assert (calls[0]["steps"], calls[0]["ema"], calls[1]["steps"], calls[1]["ema"]) == (1000, False, 5, True)
    assert calls[0]["preset"]["name"] == "basd-paper"


def test_filter_from_python_chooses_the_cli_defaults(runner, toy_dataset):
    with mock.patch("defectsynth.sd_backend.clip_filter.filter_by_clip", return_value=toy_dataset) as core:
        assert (
            runner.invoke(
                app, ["filter", "s", "--out", "o", "--by", "clip", "--clip-model", "c", "--keep-per-class", "2"]
            ).exit_code
            == 0
        )
        cli = core.call_args
        assert (
            defectsynth.filter_dataset(
                Path("s"), Path("o"), by="clip", clip_model=Path("c"), keep_per_class=2, progress=True
            )
            == toy_dataset
        )
    assert core.call_args == cli and cli.kwargs["batch_size"] == 16 and cli.kwargs["device"] == "auto"
    with mock.patch("defectsynth.filtering.filter_dataset") as core:
        defectsynth.filter_dataset("s", "o", by="segmenter", real="r", top_k=2, split="all", encoder_weights="none")
    kwargs = core.call_args.kwargs
    assert (kwargs["batch_size"], kwargs["split"], kwargs["encoder_weights"]) == (8, None, None)
    with pytest.raises(OptionError, match="--clip-model cannot be used with --by boxes"):
        defectsynth.filter_dataset("s", "o", by="boxes", clip_labels=True, clip_model="c")


# -- configs --------------------------------------------------------------------------------------
def test_train_config_is_run_json_args(tiny_run):
    text = (tiny_run / "run.json").read_text(encoding="utf-8")
    args = json.loads(text)["args"]
    config = DiffusionTrainConfig.from_json(args)
    assert list(config.to_json().items()) == list(args.items())  # same keys, same order, same values
    assert [f.name for f in fields(DiffusionTrainConfig)] == list(args)
    assert DiffusionTrainConfig.from_json(json.loads(json.dumps(config.to_json()))) == config
    with pytest.raises(FrozenInstanceError):
        config.lr = 1.0  # type: ignore[misc]
    assert config.replace(lr=1.0).lr == 1.0 and config.lr == args["lr"]


def test_train_config_refuses_unknown_keys_and_defaults_missing_ones(tiny_run):
    args = read_json(tiny_run / "run.json")["args"]
    with pytest.raises(DatasetError, match="run.json args: unknown key 'colour'"):
        DiffusionTrainConfig.from_json({**args, "colour": "red"}, tiny_run / "run.json")
    with pytest.raises(DatasetError, match="'dataset' missing"):
        DiffusionTrainConfig.from_json({k: v for k, v in args.items() if k != "dataset"})
    from defectsynth.diffusion.training import PLAIN_RECIPE

    old = DiffusionTrainConfig.from_json(
        {k: v for k, v in args.items() if k not in PLAIN_RECIPE}
    )  # a run from before the recipe options
    assert {k: getattr(old, k) for k in PLAIN_RECIPE} == PLAIN_RECIPE and PLAIN_RECIPE["prediction"] == "epsilon"


def test_sample_config_writes_optional_keys_only_when_set():
    plain = SampleConfig("r", "ddim", 5, False, 1.0, 0, True, None, {"dataset": "d", "split": None})
    assert list(plain.to_json()) == [
        "run",
        "sampler",
        "steps",
        "rescale",
        "guidance",
        "seed",
        "ema",
        "num",
        "conditions",
    ]
    onto = SampleConfig(
        "r",
        "ddpm",
        5,
        False,
        1.0,
        0,
        True,
        2,
        None,
        placement="keep",
        onto={"path": "p", "split": None},
        context_margin=0,
    )
    assert (
        list(onto.to_json())[-3:] == ["placement", "onto", "context_margin"] and onto.to_json()["context_margin"] == 0
    )
    assert SampleConfig.from_json(onto.to_json()) == onto
    with pytest.raises(DatasetError, match="unknown key 'colour'"):
        SampleConfig.from_json({**plain.to_json(), "colour": 1})


def test_sampling_settings_are_the_sample_config(tiny_run, tmp_path):
    out = tmp_path / "s"
    defectsynth.sample(tiny_run, out=out, num=2, scheduler="ddim", steps=2, batch_size=2)
    settings = read_json(out / ".sampling" / "settings.json")
    assert (
        SampleConfig.from_json(settings).to_json() == settings
        and settings["sampler"] == "ddim"
        and settings["steps"] == 2
    )


def test_the_sampler_left_out_is_dpm_for_box_runs_and_ddpm_for_mask_runs(tiny_run, data16, tmp_path):
    from defectsynth.diffusion.trained_run import Run, default_scheduler

    run = Run.open(tiny_run)
    assert (default_scheduler(run), default_scheduler(run, onto="imgs"), default_scheduler(run, rescale=True)) == (
        "dpm",
        "ddpm",
        "ddpm",
    )
    assert default_scheduler(Run(run.root, {**run.info, "args": {**run.args, "cond": "mask"}})) == "ddpm"
    manifest = defectsynth.sample(tiny_run, out=tmp_path / "s", conditions=f"{data16}:test", steps=2, batch_size=2)
    assert (manifest.source["sampler"], manifest.source["steps"]) == ("dpm", 2)
    manifest = defectsynth.sample(
        tiny_run, out=tmp_path / "d", conditions=f"{data16}:test", steps=2, batch_size=2, scheduler="ddpm"
    )
    assert manifest.source["sampler"] == "ddpm"  # the paper's sampler stays one option away
