"""The training-recipe options of train (prediction target, loss weights, self-conditioning, lr schedule)."""

from __future__ import annotations

import math

import pytest
import torch

from defectsynth.diffusion.denoising import denoise, sample_generators
from defectsynth.diffusion.losses import (
    channel_weights,
    diffusion_loss,
    min_snr_weights,
    predicted_x0,
    prediction_target,
)
from defectsynth.diffusion.models import Layout, channel_layout
from defectsynth.diffusion.sampling import sample
from defectsynth.diffusion.schedules import make_sampler, train_scheduler
from defectsynth.diffusion.trained_run import Run
from defectsynth.diffusion.training import lr_at, self_condition, train
from defectsynth.errors import OptionError

TINY = {"model": "tiny", "batch_size": 4, "epochs": 1, "preview_every": 0, "progress": False}


@pytest.mark.parametrize(
    "recipe",
    [
        {"prediction": "sample", "self_cond": True, "mask_loss_weight": 4.0, "drop_rate": 0.2},
        {"prediction": "v", "min_snr_gamma": 5.0, "lr_warmup_steps": 1, "lr_schedule": "cosine"},
    ],
)
def test_recipe_options_train_sample_and_are_recorded(data16, tmp_path, recipe):
    run = train(data16, out=tmp_path / "run", **TINY, **recipe)
    info = Run.open(run)
    assert {k: info.args[k] for k in recipe} == recipe
    assert info.info["schedule"]["prediction_type"] == recipe["prediction"]
    expected = channel_layout("basd", "joint", info.info["num_classes"], "fixed", self_cond=info.args["self_cond"])
    assert info.layout == expected and info.load_unet().config.in_channels == expected.in_channels
    guidance = 2.0 if recipe.get("drop_rate") else 1.0
    for scheduler in ("ddpm", "ddim", "dpm"):
        manifest = sample(run, out=tmp_path / scheduler, num=2, scheduler=scheduler, steps=2, guidance=guidance)
        assert manifest.stats["images"] == 2


def test_prediction_targets_give_back_x0():
    ac = train_scheduler("fixed").alphas_cumprod
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(3, 4, 5, 5, generator=g) * 2 - 1
    noise = torch.randn(3, 4, 5, 5, generator=g)
    t = torch.tensor([0, 500, 999])
    ab = ac[t][:, None, None, None]
    xt = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
    for prediction in ("epsilon", "sample", "v"):
        target = prediction_target(prediction, x0, noise, t, ac)
        assert torch.allclose(
            predicted_x0(prediction, target, xt, t, ac), x0, atol=2e-3 if prediction == "epsilon" else 1e-5
        )
    v = prediction_target("v", x0, noise, t, ac)
    assert torch.allclose(v, ab.sqrt() * noise - (1 - ab).sqrt() * x0)


def test_min_snr_weights_follow_the_formula():
    ac = train_scheduler("fixed").alphas_cumprod.double()
    t = torch.tensor([0, 10, 100, 500, 999])
    snr = ac[t] / (1 - ac[t])
    gamma = 5.0
    expected = {
        "epsilon": torch.minimum(snr, torch.full_like(snr, gamma)) / snr,
        "v": torch.minimum(snr, torch.full_like(snr, gamma)) / (snr + 1),
        "sample": torch.minimum(snr, torch.full_like(snr, gamma)),
    }
    for prediction, w in expected.items():
        assert torch.allclose(min_snr_weights(t, ac, gamma, prediction).double(), w, rtol=1e-5)
    assert min_snr_weights(t, ac, gamma, "epsilon")[0] < 1e-2 and min_snr_weights(t, ac, gamma, "epsilon")[
        -1
    ] == pytest.approx(1.0)
    assert torch.equal(min_snr_weights(t, ac, None, "v"), torch.ones(5))


def test_mask_loss_weight_scales_only_the_mask_channels():
    ac = train_scheduler("fixed").alphas_cumprod
    t = torch.tensor([10, 20])
    noise, x0 = torch.zeros(2, 5, 4, 4), torch.zeros(2, 5, 4, 4)
    out = torch.zeros(2, 5, 4, 4)
    out[:, 3:] = 1.0  # error only in the 2 mask channels
    w = channel_weights(5, "joint", 3.0)
    assert w.tolist() == [1, 1, 1, 3, 3] and channel_weights(2, "mask", 3.0).tolist() == [3, 3]
    plain = diffusion_loss(out, noise, x0, x0, t, None, ac, False)
    weighted = diffusion_loss(out, noise, x0, x0, t, None, ac, False, weights=w)
    assert plain.item() == pytest.approx(2 / 5) and weighted.item() == pytest.approx(3 * 2 / 5)


def test_lr_warmup_and_cosine_follow_the_formula():
    assert [lr_at(s, 1.0, 4, "constant", 10) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    for step in range(4, 12):
        done = min(1.0, (step - 4) / 6)
        assert lr_at(step, 2.0, 4, "cosine", 10) == pytest.approx(2.0 * 0.5 * (1 + math.cos(math.pi * done)))
    assert lr_at(0, 2.0, 0, "cosine", 10) == 2.0 and lr_at(10, 2.0, 0, "cosine", 10) == pytest.approx(0.0)


class Recorder(torch.nn.Module):
    """A stand-in network: records its inputs, outputs a constant per channel."""

    def __init__(self, out_channels: int, value: float):
        super().__init__()
        self.inputs, self.out_channels, self.value = [], out_channels, value
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x, t):
        self.inputs.append(x.clone())
        out = torch.full((x.shape[0], self.out_channels, *x.shape[-2:]), self.value)
        return type("Out", (), {"sample": out})()


def test_self_conditioning_two_passes_in_training():
    ac = train_scheduler("fixed", "sample").alphas_cumprod
    net = Recorder(2, 0.5)
    xt, cond = torch.randn(3, 2, 4, 4), torch.randn(3, 1, 4, 4)
    use = torch.tensor([True, False, True])
    estimate = self_condition(net, xt, cond, torch.tensor([5, 6, 7]), use, "sample", ac)
    assert len(net.inputs) == 1 and net.inputs[0].shape[1] == 5  # [x_t | zeros | condition]
    assert torch.equal(net.inputs[0][:, 2:4], torch.zeros(3, 2, 4, 4))
    assert torch.all(estimate[0] == 0.5) and torch.all(estimate[1] == 0) and torch.all(estimate[2] == 0.5)
    net2 = Recorder(2, 0.5)
    self_condition(net2, xt, cond, torch.tensor([5, 6, 7]), torch.zeros(3, dtype=torch.bool), "sample", ac)
    assert net2.inputs == []  # no first pass when no sample uses it


def test_self_conditioning_feeds_the_previous_estimate_when_sampling():
    layout = Layout(target_channels=2, cond_channels=1, out_channels=2, mask_bits=0, self_cond_channels=2)
    net = Recorder(2, 0.25)  # x_0 prediction: always 0.25
    sampler = make_sampler("ddpm", 3, "fixed", prediction="sample")
    denoise(net, layout, sampler, torch.zeros(2, 1, 4, 4), sample_generators(0, [0, 1]), prediction="sample")
    assert len(net.inputs) == 3
    assert torch.all(net.inputs[0][:, 2:4] == 0) and all(torch.all(x[:, 2:4] == 0.25) for x in net.inputs[1:])


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("prediction", "x0", "--prediction"),
        ("mask_loss_weight", 0.0, "--mask-loss-weight"),
        ("min_snr_gamma", -1.0, "--min-snr-gamma"),
        ("lr_warmup_steps", -1, "--lr-warmup-steps"),
        ("lr_schedule", "linear", "--lr-schedule"),
    ],
)
def test_bad_recipe_options_are_one_line_option_errors(data16, tmp_path, option, value, message):
    with pytest.raises(OptionError, match=message):
        train(data16, out=tmp_path / "bad", **TINY, **{option: value})


def test_defaults_are_the_measured_recipe_and_old_runs_resume_as_plain(data16, tmp_path):
    """Defaults: x_0 for the image and the mask bits, self-conditioning, mask weight 4 (docs/recipe-ablation.md). A run
    written before the options existed (no recipe keys in run.json) resumes as the plain recipe."""
    import json

    from defectsynth.diffusion.training import PLAIN_RECIPE

    run = train(data16, out=tmp_path / "run", variance="learned", max_steps=1, **TINY)
    args = Run.open(run).args
    assert (args["prediction"], args["mask_prediction"], args["self_cond"], args["mask_loss_weight"]) == (
        "sample",
        "sample",
        True,
        4.0,
    )
    old = train(data16, out=tmp_path / "old", max_steps=1, **TINY, **PLAIN_RECIPE)
    info = json.loads((old / "run.json").read_text())
    info["args"] = {k: v for k, v in info["args"].items() if k not in PLAIN_RECIPE}
    (old / "run.json").write_text(json.dumps(info))
    assert Run.open(old).prediction == "epsilon"
    train(data16, out=old, max_steps=2, resume=True, **TINY, **PLAIN_RECIPE)
    with pytest.raises(OptionError, match="--mask-prediction"):  # --prediction left out means the run's own (epsilon)
        train(data16, out=old, max_steps=3, resume=True, **TINY)
    with pytest.raises(OptionError, match=r"--prediction \('epsilon' -> 'sample'\)"):
        train(data16, out=old, max_steps=3, resume=True, **{**TINY, **PLAIN_RECIPE, "prediction": "sample"})
