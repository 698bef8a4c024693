"""Per-channel-group prediction targets (--mask-prediction) and grey-scale runs (--channels)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from defectsynth.data import Dataset
from defectsynth.diffusion.conditioning import EncodedSet, image_channels, is_grey, tensor_to_image, to_grey
from defectsynth.diffusion.denoising import decode, denoise, sample_generators
from defectsynth.diffusion.losses import (
    channel_predictions,
    diffusion_loss,
    min_snr_weights,
    predicted_eps,
    predicted_x0,
    prediction_target,
    scheduler_prediction,
)
from defectsynth.diffusion.models import channel_layout
from defectsynth.diffusion.sampling import sample
from defectsynth.diffusion.schedules import make_sampler, train_scheduler
from defectsynth.diffusion.trained_run import Run
from defectsynth.diffusion.training import GREY_PREDICTION, train
from defectsynth.errors import OptionError

TINY = {"model": "tiny", "batch_size": 4, "epochs": 1, "preview_every": 0, "progress": False}
MIXED = ("v", "v", "v", "sample", "sample")  # RGB by v, two mask bits by x_0


@pytest.fixture(scope="module")
def grey_toy(data16, tmp_path_factory) -> Path:
    """The toy dataset with every image turned grey (R = G = B) on disk."""
    import shutil

    out = tmp_path_factory.mktemp("grey") / "toy"
    shutil.copytree(data16, out)
    for path in (out / "images").glob("*.png"):
        grey = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2GRAY)
        cv2.imwrite(str(path), cv2.merge([grey, grey, grey]))
    return out


def _xt(shape=(3, 5, 4, 4)):
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.rand(*shape, generator=g) * 2 - 1, torch.randn(*shape, generator=g)
    ac = train_scheduler("fixed").alphas_cumprod
    t = torch.tensor([0, 400, 999])
    ab = ac[t][:, None, None, None]
    return x0, noise, t, ac, ab.sqrt() * x0 + (1 - ab).sqrt() * noise


def test_channel_predictions_name_each_channel():
    assert channel_predictions("v", None, "joint", 3, 5) == "v"
    assert channel_predictions("v", "v", "joint", 3, 5) == "v"
    assert channel_predictions("v", "sample", "joint", 3, 5) == MIXED
    assert channel_predictions("epsilon", "sample", "joint", 1, 3) == ("epsilon", "sample", "sample")
    assert (
        channel_predictions("v", "sample", "mask", 3, 2) == "sample"
        and channel_predictions("v", "sample", "image", 3, 3) == "v"
    )
    assert scheduler_prediction("v") == "v" and scheduler_prediction(MIXED) == "epsilon"


def test_group_targets_are_the_single_targets_channel_by_channel():
    x0, noise, t, ac, xt = _xt()
    target = prediction_target(MIXED, x0, noise, t, ac)
    assert torch.equal(target[:, :3], prediction_target("v", x0, noise, t, ac)[:, :3])
    assert torch.equal(target[:, 3:], x0[:, 3:])
    assert torch.allclose(predicted_x0(MIXED, target, xt, t, ac), x0, atol=1e-5)
    assert torch.allclose(
        predicted_eps(MIXED, target, xt, t, ac)[1:], noise[1:], atol=1e-3
    )  # t = 0: eps from x_0 is ill-conditioned
    with pytest.raises(ValueError, match="channels"):
        prediction_target(MIXED[:4], x0, noise, t, ac)


def test_group_loss_weights_each_group_by_its_own_min_snr_rule():
    x0, noise, t, ac, xt = _xt()
    w = min_snr_weights(t, ac, 5.0, MIXED, 5)
    assert torch.allclose(w[:, 0], min_snr_weights(t, ac, 5.0, "v")) and torch.allclose(
        w[:, 4], min_snr_weights(t, ac, 5.0, "sample")
    )
    output = torch.randn_like(x0)
    weights = torch.tensor([1.0, 1, 1, 4, 4])
    err = (
        (output - prediction_target(MIXED, x0, noise, t, ac)) ** 2 * weights[None, :, None, None] * w[:, :, None, None]
    )
    loss = diffusion_loss(output, noise, x0, xt, t, None, ac, False, MIXED, weights, 5.0)
    assert loss.item() == pytest.approx(err.mean().item(), rel=1e-6)
    # one name for every channel: the per-channel path gives the uniform loss
    uniform = diffusion_loss(output, noise, x0, xt, t, None, ac, False, "v", weights, 5.0)
    assert uniform.item() == pytest.approx(
        diffusion_loss(output, noise, x0, xt, t, None, ac, False, ("v",) * 5, weights, 5.0).item(), rel=1e-6
    )


class _GroupOracle(torch.nn.Module):
    """Outputs the exact per-group target (v for RGB, x_0 for the bits) of x_t for a known x_0."""

    def __init__(self, x0, alphas_cumprod):
        super().__init__()
        self.x0, self.ab = x0, alphas_cumprod

    def forward(self, inputs, t):
        x = inputs[:, : self.x0.shape[1]]
        tt = torch.full((len(x),), int(t))
        ab = self.ab[tt][:, None, None, None]
        noise = (x - ab.sqrt() * self.x0) / (1 - ab).sqrt()
        return SimpleNamespace(sample=prediction_target(MIXED, self.x0, noise, tt, self.ab))


@pytest.mark.parametrize(("name", "steps"), [("ddpm", 20), ("ddim", 20), ("dpm", 10)])
def test_every_sampler_recovers_x0_from_a_perfect_group_predictor(name, steps):
    layout = channel_layout("none", "joint", 4, "fixed")
    x0 = torch.rand(2, layout.target_channels, 8, 8) * 2 - 1
    sampler = make_sampler(name, steps, "fixed", False, scheduler_prediction(MIXED))
    oracle = _GroupOracle(x0, sampler.scheduler.alphas_cumprod)
    x = denoise(oracle, layout, sampler, torch.zeros(2, 0, 8, 8), sample_generators(0, [0, 1]), prediction=MIXED)
    assert torch.allclose(x, x0, atol=1e-3)


@pytest.mark.slow
def test_mask_prediction_trains_samples_is_recorded_and_fixed_on_resume(data16, tmp_path):
    run = train(data16, out=tmp_path / "run", max_steps=2, prediction="v", mask_prediction="sample", **TINY)
    info = Run.open(run)
    assert info.args["mask_prediction"] == "sample" and info.info["schedule"]["mask_prediction_type"] == "sample"
    assert info.prediction == ("v",) * 3 + ("sample",) * info.layout.mask_bits
    for scheduler in ("ddpm", "ddim", "dpm"):
        assert sample(run, out=tmp_path / scheduler, num=2, scheduler=scheduler, steps=2).stats["images"] == 2
    with pytest.raises(OptionError, match="--mask-prediction"):
        train(data16, out=run, max_steps=3, resume=True, prediction="v", mask_prediction="epsilon", **TINY)
    with pytest.raises(OptionError, match="--mask-prediction"):
        train(data16, out=tmp_path / "bad", max_steps=1, mask_prediction="x0", **TINY)


def test_grey_detection_and_luminance():
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0] = 200
    grey = np.full((4, 4, 3), 77, np.uint8)
    assert is_grey(grey) and not is_grey(rgb)
    nearly = grey.copy()
    nearly[0, 0, 0] += 3  # one pixel three levels off: mean difference 3/16 level, a JPEG's chroma rounding
    assert is_grey(nearly)
    assert image_channels("auto", [grey, nearly]) == 1 and image_channels("auto", [grey, rgb]) == 3
    assert image_channels("grey", [rgb]) == 1 and image_channels("rgb", [grey]) == 3
    assert to_grey(grey[None])[0, ..., 0].tolist() == [[77] * 4] * 4
    assert to_grey(rgb[None])[0, 0, 0, 0] == round(0.299 * 200)
    image = tensor_to_image(torch.zeros(1, 2, 2))
    assert image.shape == (2, 2, 3) and (image == 128).all()


def test_nearly_grey_colour_data_keeps_rgb_and_says_so(caplog):
    grey = np.full((4, 4, 3), 100, np.uint8)
    tinted = grey.copy()
    tinted[..., 2] += 3  # a bluish cast of 3 levels everywhere (CrackForest's median photo): colour, not grey
    with caplog.at_level(logging.WARNING, logger="defectsynth.diffusion.conditioning"):
        assert image_channels("auto", [tinted, tinted, grey]) == 3
    assert "nearly grey (median channel difference 3.0 levels)" in caplog.text and "--channels grey" in caplog.text
    caplog.clear()
    red = grey.copy()
    red[..., 0] = 200  # a colourful dataset: no hint
    with caplog.at_level(logging.WARNING, logger="defectsynth.diffusion.conditioning"):
        assert image_channels("auto", [red, red, tinted]) == 3
    assert caplog.text == ""


@pytest.mark.slow
def test_grey_dataset_trains_one_image_channel_and_samples_grey(grey_toy, data16, tmp_path):
    ds = Dataset(grey_toy)
    samples = [ds.read(s) for s in ds.stems]
    data = EncodedSet(samples, "basd", "joint", ds.manifest.num_classes, "auto")
    assert data.image_channels == 1 and data.images.shape[1] == 1 and data.targets(torch.tensor([0])).shape[1] == 1 + 3
    run = train(grey_toy, out=tmp_path / "grey", max_steps=2, **TINY)
    info = Run.open(run)
    colour = Run.open(train(data16, out=tmp_path / "rgb", max_steps=2, **TINY))
    assert info.args["channels"] == "grey" and colour.args["channels"] == "rgb"
    assert info.layout.image_channels == 1 and info.layout.target_channels == colour.layout.target_channels - 2
    assert (
        info.load_unet().config.in_channels == colour.load_unet().config.in_channels - 4
    )  # target + self-conditioning
    out = sample(run, out=tmp_path / "s", num=3, scheduler="ddim", steps=2)
    synth = Dataset(tmp_path / "s")
    for stem in synth.stems:
        image = synth.read(stem).image
        assert (image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all()
    assert out.stats["images"] == 3
    forced = Run.open(train(data16, out=tmp_path / "forced", max_steps=1, channels="grey", **TINY))
    assert forced.layout.image_channels == 1
    with pytest.raises(OptionError, match="--resume: --channels"):
        train(grey_toy, out=run, max_steps=3, resume=True, channels="rgb", **TINY)
    train(grey_toy, out=run, max_steps=3, resume=True, **TINY)  # auto: as the run was started
    assert json.loads((run / "run.json").read_text())["args"]["channels"] == "grey"


@pytest.mark.slow
def test_the_image_target_left_out_follows_the_channels(grey_toy, data16, tmp_path):
    grey = Run.open(train(grey_toy, out=tmp_path / "grey", max_steps=1, **TINY))
    colour = Run.open(train(data16, out=tmp_path / "rgb", max_steps=1, **TINY))
    # grey-scale: v for the image, x_0 for the mask bits (the CrackForest grey recipe); RGB: x_0 for both
    assert (grey.args["prediction"], grey.args["mask_prediction"]) == (GREY_PREDICTION, "sample") == ("v", "sample")
    assert grey.info["schedule"]["prediction_type"] == "v" and grey.info["schedule"]["mask_prediction_type"] == "sample"
    assert (colour.args["prediction"], colour.args["mask_prediction"]) == ("sample", "sample")
    forced = Run.open(train(data16, out=tmp_path / "forced", max_steps=1, channels="grey", **TINY))
    assert forced.args["prediction"] == "v"
    given = Run.open(train(grey_toy, out=tmp_path / "given", max_steps=1, prediction="sample", **TINY))
    assert given.args["prediction"] == "sample"  # an explicit target wins
    train(grey_toy, out=tmp_path / "given", max_steps=2, resume=True, **TINY)  # left out on resume: the run's own
    assert json.loads((tmp_path / "given" / "run.json").read_text())["args"]["prediction"] == "sample"
    with pytest.raises(OptionError, match="--resume: --prediction"):
        train(grey_toy, out=tmp_path / "given", max_steps=3, resume=True, prediction="v", **TINY)


def test_decode_reads_the_bits_after_the_grey_channel():
    x = torch.full((3, 4, 4), -1.0)
    x[0] = 1.0
    x[1:, :2] = 1.0  # bits 11 -> class 3 in the top rows
    image, mask, invalid = decode(x, "joint", 4, [], image_channels=1)
    assert (image == 255).all() and (mask[:2] == 3).all() and (mask[2:] == 0).all() and invalid == 0
