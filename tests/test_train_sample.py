"""End-to-end tests of train and sample with tiny models (16 px, a few steps)."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from _launch import two_cpu_processes
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

from defectsynth.cli import app
from defectsynth.data import Dataset
from defectsynth.data.prepare import prepare
from defectsynth.diffusion.sampling import sample
from defectsynth.diffusion.training import train
from defectsynth.errors import OptionError, OutputExistsError

TINY = {"model": "tiny", "batch_size": 4, "epochs": 1, "preview_every": 0, "progress": False}


def _digest(folder: Path, pattern: str = "*") -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob(pattern))
        if p.is_file()
    }


def _visible(folder: Path) -> dict[str, str]:
    return {k: v for k, v in _digest(folder).items() if not k.startswith(".sampling")}


@pytest.mark.slow
@pytest.mark.parametrize("cond", ["basd", "boxmask", "none"])
@pytest.mark.parametrize("target", ["joint", "image", "mask"])
def test_every_combination_trains_and_samples(data16, tmp_path, cond, target):
    run = train(data16, out=tmp_path / "run", cond=cond, target=target, **TINY)  # the train split: 2 steps
    for name in (
        "run.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "unet_ema/config.json",
        "scheduler/scheduler_config.json",
        "log.jsonl",
        "checkpoint-2/trainer.json",
    ):
        assert (run / name).is_file(), name
    info = json.loads((run / "run.json").read_text())
    assert info["args"]["cond"] == cond and info["args"]["target"] == target and info["size"] == [16, 16]
    manifest = sample(run, out=tmp_path / "synth", num=3, scheduler="ddim", steps=2)
    ds = Dataset(tmp_path / "synth")
    ds.validate()
    assert len(ds) == 3 and ds.has_masks == (target != "image") and ds.manifest.synthetic
    src = manifest.source
    assert {"run", "sampler", "steps", "rescale", "guidance", "seed", "conditions", "condition_of"} <= set(src)
    if cond == "none":
        assert src["conditions"] == {"dataset": None, "split": None} and src["condition_of"] == {}
    else:
        assert src["conditions"]["split"] == "train" and len(src["condition_of"]) == 3
        for stem, condition in src["condition_of"].items():
            assert stem.startswith(condition + "-")
            assert ds.read_boxes(stem) == Dataset(data16).read_boxes(condition)


@pytest.mark.slow
def test_resume_after_a_stop_equals_an_uninterrupted_run(data16, tmp_path):
    common = dict(TINY, batch_size=2, epochs=5, checkpoint_every=2, variance="learned", drop_rate=0.3)
    whole = train(data16, out=tmp_path / "whole", max_steps=5, **common)
    train(data16, out=tmp_path / "parts", max_steps=4, **common)  # stops mid-epoch (5 train images: 3 steps per epoch)
    parts = train(data16, out=tmp_path / "parts", max_steps=5, resume=True, **common)
    for name in ("model", "ema", "optimizer"):
        a = load_file(str(whole / "checkpoint-5" / f"{name}.safetensors"))
        b = load_file(str(parts / "checkpoint-5" / f"{name}.safetensors"))
        assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a), name
    assert _digest(whole / "unet") == _digest(parts / "unet")
    assert (whole / "log.jsonl").read_text() != "" and json.loads(
        (parts / "checkpoint-5" / "trainer.json").read_text()
    )["step"] == 5
    assert sorted(p.name for p in parts.glob("checkpoint-*")) == ["checkpoint-4", "checkpoint-5"]  # limit 2
    with pytest.raises(OptionError, match="--lr"):
        train(data16, out=tmp_path / "parts", max_steps=6, resume=True, **dict(common, lr=1e-3))
    with pytest.raises(OutputExistsError, match="--resume"):
        train(data16, out=tmp_path / "parts", max_steps=6, **common)


@pytest.mark.slow
def test_resume_at_auto_precision_keeps_the_precision_the_run_started_with(data16, tmp_path, monkeypatch):
    """A float32 run resumed with --mixed-precision auto on a machine where auto means bf16 goes on in
    float32: it ends with the weights of the uninterrupted float32 run, and run.json still says no."""
    from defectsynth.diffusion import processes

    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    monkeypatch.setattr(processes, "native_bf16", lambda device: True)
    common = dict(TINY, batch_size=2, epochs=5, checkpoint_every=2)
    whole = train(data16, out=tmp_path / "whole", max_steps=4, mixed_precision="no", **common)
    train(data16, out=tmp_path / "parts", max_steps=2, mixed_precision="no", **common)
    parts = train(data16, out=tmp_path / "parts", max_steps=4, resume=True, **common)  # auto
    a, b = (load_file(str(r / "checkpoint-4" / "model.safetensors")) for r in (whole, parts))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((parts / "run.json").read_text())["args"]["mixed_precision"] == "no"
    fresh = train(data16, out=tmp_path / "fresh", max_steps=1, **common)  # auto on a new run: bf16 here
    assert json.loads((fresh / "run.json").read_text())["args"]["mixed_precision"] == "bf16"


@pytest.fixture(scope="module")
def guided_run(data16, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "guided"
    return train(data16, out=out, variance="learned", drop_rate=0.3, max_steps=2, **dict(TINY, epochs=2))


def test_samples_do_not_depend_on_batch_size_and_reruns_skip(guided_run, tmp_path):
    options = dict(num=5, scheduler="ddpm", steps=3, guidance=1.5, seed=7)
    sample(guided_run, out=tmp_path / "b1", batch_size=1, **options)
    sample(guided_run, out=tmp_path / "b4", batch_size=4, **options)
    # CPU convolution kernels differ by batch size in the last float bits: images may differ by one
    # 8-bit level (seen with x_0 prediction, whose output is the image itself); the rest is identical.
    one, four = _visible(tmp_path / "b1"), _visible(tmp_path / "b4")
    drawn = ("images/", "previews/")  # the contact sheet shows the images
    assert {k: v for k, v in one.items() if not k.startswith(drawn)} == {
        k: v for k, v in four.items() if not k.startswith(drawn)
    }
    assert sorted(one) == sorted(four)
    for name in (k for k in one if k.startswith("images/")):
        a, b = (np.asarray(Image.open(tmp_path / run / name), dtype=np.int16) for run in ("b1", "b4"))
        assert np.abs(a - b).max() <= 1, name
    # a rerun with the same settings skips everything; one sample lost is redrawn identically
    before = _visible(tmp_path / "b4")
    victim = sorted((tmp_path / "b4" / "images").iterdir())[2].stem
    for sub in ("images", "masks", ".sampling"):
        next((tmp_path / "b4" / sub).glob(f"{victim}.*")).unlink()
    sample(guided_run, out=tmp_path / "b4", batch_size=4, **options)
    assert _visible(tmp_path / "b4") == before
    with pytest.raises(OutputExistsError, match="other settings"):
        sample(guided_run, out=tmp_path / "b4", batch_size=4, **dict(options, seed=8))


def test_rescaled_sampler_dpm_and_guidance_rules(guided_run, data16, tmp_path):
    m = sample(guided_run, out=tmp_path / "r", num=2, steps=21, rescale=True)
    assert m.source["rescale"] is True and m.source["steps"] == 21
    m = sample(guided_run, out=tmp_path / "d", num=2, steps=3, scheduler="dpm", conditions=f"{data16}:test")
    assert m.source["sampler"] == "dpm" and m.source["conditions"]["split"] == "test"
    plain = train(data16, out=tmp_path / "plain", max_steps=1, **TINY)
    with pytest.raises(OptionError, match="--guidance"):
        sample(plain, out=tmp_path / "x", num=1, guidance=2.0, steps=2)


def test_a_balance_plan_draws_each_condition_its_repeats(guided_run, data16, tmp_path):
    from collections import Counter

    from defectsynth.errors import DatasetError

    stems = Dataset(data16).split("train")
    plan = tmp_path / "plan.json"
    plan.write_text(
        json.dumps(
            {
                "format": 1,
                "dataset": str(data16),
                "n_balance": 3,
                "split": "train",
                "plan": [{"stem": stems[3], "repeats": 2}, {"stem": stems[0], "repeats": 1}],
            }
        )
    )
    options = dict(plan=plan, scheduler="ddim", steps=2, seed=4)
    manifest = sample(guided_run, out=tmp_path / "p", batch_size=2, **options)
    ds = Dataset(tmp_path / "p")
    assert ds.stems == sorted([f"{stems[3]}-0", f"{stems[3]}-1", f"{stems[0]}-0"])
    assert Counter(manifest.source["condition_of"].values()) == {stems[3]: 2, stems[0]: 1}
    assert manifest.source["plan"]["path"] == str(plan.resolve()) and manifest.source["conditions"]["split"] == "train"
    for stem, condition in manifest.source["condition_of"].items():
        assert ds.read_boxes(stem) == Dataset(data16).read_boxes(condition)
    indices = {s: json.loads((tmp_path / "p" / ".sampling" / f"{s}.json").read_text())["index"] for s in ds.stems}
    assert indices == {f"{stems[3]}-0": 0, f"{stems[3]}-1": 1, f"{stems[0]}-0": 2}  # seeded by plan order
    before = _visible(tmp_path / "p")
    (tmp_path / "p" / ".sampling" / f"{stems[0]}-0.json").unlink()
    sample(guided_run, out=tmp_path / "p", batch_size=3, **options)  # resumes: redraws the lost one identically
    assert _visible(tmp_path / "p") == before
    with pytest.raises(OptionError, match="--plan .* without --num and --conditions"):
        sample(guided_run, out=tmp_path / "x", num=2, **options)
    with pytest.raises(OptionError, match="--plan .* without --num and --conditions"):
        sample(guided_run, out=tmp_path / "x", conditions=str(data16), **options)
    plan.write_text(json.dumps({"format": 1, "dataset": str(data16), "plan": [{"stem": "nope", "repeats": 1}]}))
    with pytest.raises(DatasetError, match=f"{plan}: plan stem 'nope' is not in the plan's dataset"):
        sample(guided_run, out=tmp_path / "x", **options)
    result = CliRunner().invoke(
        app, ["sample", str(guided_run), "--plan", str(plan), "--out", str(tmp_path / "x"), "--no-progress"]
    )
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert (
        result.exit_code == 2 and len(lines) == 1 and "plan stem 'nope'" in lines[0] and str(plan.name) in lines[0]
    ), lines
    plan.write_text(json.dumps({"format": 1, "dataset": str(data16), "plan": []}))
    with pytest.raises(DatasetError, match="lists no generations"):
        sample(guided_run, out=tmp_path / "x", **options)
    plan.write_text(json.dumps({"format": 1, "dataset": str(tmp_path), "plan": [{"stem": stems[0], "repeats": 1}]}))
    with pytest.raises(DatasetError, match="is not a dataset folder"):
        sample(guided_run, out=tmp_path / "x", **options)
    assert not (tmp_path / "x").exists()


def test_step_draws_do_not_depend_on_the_batch_split():
    """A sample's draws depend on (seed, step, its position in the global batch) only."""
    from defectsynth.diffusion.training import step_draws

    whole = step_draws(3, 7, [0, 1, 2, 3], (2, 4, 4), 1000, "cpu")
    halves = [step_draws(3, 7, positions, (2, 4, 4), 1000, "cpu") for positions in ([0, 2], [1, 3])]
    for name in ("flips", "drop", "use_self_cond", "t", "noise"):
        joined = torch.stack([getattr(halves[i % 2], name)[i // 2] for i in range(4)])
        assert torch.equal(joined, getattr(whole, name)), name
    assert not torch.equal(whole.noise, step_draws(3, 8, [0, 1, 2, 3], (2, 4, 4), 1000, "cpu").noise)


@pytest.mark.slow
def test_two_processes_train_and_sample_like_one(tmp_path):
    """Two CPU processes (accelerate launch --multi_gpu --num_processes 2 on a machine without a GPU;
    accelerate 1.x's ``--cpu`` starts a single process without mpirun) with batch 2 train like one
    process with batch 4 (the same global batch), and sample what one process samples.

    Every sample's random draws are seeded by its position in the global batch and the gradients
    are averaged over the processes, so the two runs compute the same steps; what may differ is the
    order of floating-point sums (all-reduce, batch-size dependent kernels): ~1e-7 relative per
    step, so 1e-4 on the losses and weights after 4 steps is loose and still catches any real
    difference (another batch, other noise: the losses differ by whole percents)."""
    data = tmp_path / "toy"
    prepare("toy", data, num=10, size="16", seed=1, split_fractions="0.8,0.1,0.1")  # 8 training images: no padding
    launch, env = two_cpu_processes()
    launch = [*launch, "-m", "defectsynth"]
    common = ["--no-progress"]
    # float32 on both sides: bf16 autocast (train's auto on CPUs with AVX512-BF16) rounds batches of 2 and 4 apart by
    # ~1e-3
    options = {"model": "tiny", "epochs": 2, "lr": 1e-3, "split": "train", "preview_every": 0, "mixed_precision": "no"}
    subprocess.run(
        [
            *launch,
            "train",
            str(data),
            "--out",
            str(tmp_path / "run"),
            "--batch-size",
            "2",
            "--model",
            "tiny",
            "--epochs",
            "2",
            "--lr",
            "1e-3",
            "--split",
            "train",
            "--preview-every",
            "0",
            "--mixed-precision",
            "no",
            *common,
        ],
        check=True,
        env=env,
        timeout=300,
    )
    one_run = train(data, out=tmp_path / "one-run", batch_size=4, progress=False, **options)
    two_log, one_log = (
        [json.loads(line) for line in (r / "log.jsonl").read_text().splitlines()] for r in (tmp_path / "run", one_run)
    )
    assert [e["step"] for e in two_log] == [e["step"] for e in one_log] == [2, 4]
    assert np.allclose([e["loss"] for e in two_log], [e["loss"] for e in one_log], rtol=1e-4, atol=0)
    two_w, one_w = (load_file(str(r / "checkpoint-4" / "model.safetensors")) for r in (tmp_path / "run", one_run))
    assert max((two_w[k] - one_w[k]).abs().max().item() for k in one_w) < 1e-4
    assert (tmp_path / "run" / "checkpoint-4" / "rng-1.safetensors").is_file()
    subprocess.run(
        [
            *launch,
            "sample",
            str(tmp_path / "run"),
            "--out",
            str(tmp_path / "two"),
            "--num",
            "5",
            "--scheduler",
            "ddpm",
            "--steps",
            "2",
            "--batch-size",
            "2",
            *common,
        ],
        check=True,
        env=env,
        timeout=300,
    )
    # the same --batch-size: process 0 draws samples 0, 2, 4 in batches of 2 and 1, process 1 samples
    # 1, 3, one process 0-1, 2-3, 4; every batch is padded to 2 rows (denoising.fixed_rows)
    sample(tmp_path / "run", out=tmp_path / "one", num=5, scheduler="ddpm", steps=2, batch_size=2)
    assert _visible(tmp_path / "one") == _visible(tmp_path / "two")


@pytest.mark.slow
def test_finetune_and_patience(guided_run, data16, tmp_path):
    run = train(
        data16, out=tmp_path / "ft", finetune=guided_run, variance="learned", drop_rate=0.2, max_steps=1, **TINY
    )
    assert json.loads((run / "run.json").read_text())["args"]["finetune"] == str(guided_run.resolve())
    with pytest.raises(OptionError, match="--finetune: .* out_channels"):
        train(data16, out=tmp_path / "ft2", finetune=guided_run, variance="fixed", max_steps=1, **TINY)
    stopped = train(data16, out=tmp_path / "patient", patience_steps=1, **dict(TINY, epochs=40, lr=0.5))
    log = [json.loads(line) for line in (stopped / "log.jsonl").read_text().splitlines()]
    assert len(log) < 40 and not log[-1]["improved"]


def test_saved_weights_round_trip(guided_run):
    """unet/ and unet_ema/ (save_pretrained) load back equal to the checkpoint of the same step."""
    from defectsynth.diffusion.trained_run import Run

    run = Run.open(guided_run)
    assert run.layout.out_channels == 2 * run.layout.target_channels  # learned variance
    for ema, name in ((False, "model"), (True, "ema")):
        loaded = run.load_unet(ema=ema).state_dict()
        saved = load_file(str(guided_run / "checkpoint-2" / f"{name}.safetensors"))
        assert loaded.keys() == saved.keys() and all((loaded[k] == saved[k]).all() for k in saved)


@pytest.mark.slow
def test_finetune_takes_cond_target_model_and_size_from_the_run(data16, tmp_path, runner):
    """A finetune of a mask-conditioned (ISDM) run without repeating --cond/--target/--model/--size
    (issue 23); given, they must equal the run's, and one line names both."""
    from defectsynth.cli import app

    isdm = train(data16, out=tmp_path / "isdm", cond="mask", target="image", size="24", max_steps=1, **TINY)
    common = [
        "--finetune",
        str(isdm),
        "--drop-rate",
        "0.2",
        "--batch-size",
        "4",
        "--max-steps",
        "1",
        "--preview-every",
        "0",
        "--no-progress",
    ]
    result = runner.invoke(app, ["train", str(data16), "--out", str(tmp_path / "ft"), *common])
    assert result.exit_code == 0, result.output
    args = json.loads((tmp_path / "ft" / "run.json").read_text())["args"]
    assert (args["cond"], args["target"], args["model"], args["size"]) == ("mask", "image", "tiny", "24x24")
    result = runner.invoke(
        app, ["train", str(data16), "--out", str(tmp_path / "ft2"), *common, "--size", "24", "--cond", "mask"]
    )
    assert result.exit_code == 0, result.output  # given and equal (24 is 24x24)
    result = runner.invoke(app, ["train", str(data16), "--out", str(tmp_path / "ft3"), *common, "--model", "small"])
    assert result.exit_code == 2 and f"--finetune: {isdm} was trained with --model tiny, not small" in result.output, (
        result.output
    )
    assert not (tmp_path / "ft3").exists()
