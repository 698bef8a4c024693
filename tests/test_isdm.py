"""Mask-conditioned synthesis (SDM/ISDM, Lemons thesis ch. 6): the SPADE UNet, the null label,
guidance on the noise channels only, finetuning, mask augmentation and the All-Latent chain."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from defectsynth.data import Dataset
from defectsynth.diffusion.denoising import denoise
from defectsynth.diffusion.mask_augment import MaskAugment
from defectsynth.diffusion.models import build_unet, channel_layout, load_network, spade_config
from defectsynth.diffusion.sampling import sample
from defectsynth.diffusion.schedules import Sampler
from defectsynth.diffusion.spade_unet import SPADEUNet2DModel
from defectsynth.diffusion.trained_run import Run, run_defaults
from defectsynth.diffusion.training import train
from defectsynth.errors import OptionError

TINY = {"model": "tiny", "batch_size": 4, "epochs": 1, "preview_every": 0, "progress": False}


def _tiny_spade(num_classes: int = 3) -> SPADEUNet2DModel:
    torch.manual_seed(0)
    net = build_unet(spade_config("tiny", (16, 16), channel_layout("mask", "image", num_classes, "learned")))
    torch.nn.init.normal_(net.conv_out.weight, std=0.1)  # zero-initialised: give the output something to show
    for name, p in net.named_parameters():
        if name.endswith("conv2.weight"):
            torch.nn.init.normal_(p, std=0.05)
    return net


def _onehot(ids: torch.Tensor, c: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(ids, c).permute(0, 3, 1, 2).float()


def test_spade_unet_forward_backward_and_save_load(tmp_path):
    net = _tiny_spade()
    x, seg = torch.randn(2, 3, 16, 16), _onehot(torch.randint(0, 3, (2, 16, 16)), 3)
    out = net(torch.cat([x, seg], 1), torch.tensor([5, 900])).sample
    assert out.shape == (2, 6, 16, 16)
    assert torch.allclose(out, net(x, torch.tensor([5, 900]), segmap=seg).sample, atol=1e-5)
    out.square().mean().backward()
    assert all(p.grad is not None for n, p in net.named_parameters() if ".norm" not in n)
    assert net.conv_in.in_channels == 3  # the mask never enters the convolution path
    net.save_pretrained(tmp_path / "m", safe_serialization=True)
    assert (tmp_path / "m" / "diffusion_pytorch_model.safetensors").is_file()
    loaded = load_network(tmp_path / "m")
    assert isinstance(loaded, SPADEUNet2DModel)
    with torch.no_grad():
        assert torch.equal(net.eval()(x, 7, segmap=seg).sample, loaded.eval()(x, 7, segmap=seg).sample)


def test_mask_changes_only_the_decoder_and_null_label_is_all_zero():
    net = _tiny_spade().eval()
    x = torch.randn(1, 3, 16, 16)
    a, b = _onehot(torch.zeros(1, 16, 16, dtype=torch.long), 3), _onehot(torch.full((1, 16, 16), 2), 3)
    encoder = {}
    net.down[-1][-1].register_forward_hook(lambda m, i, o: encoder.setdefault(len(encoder), o))
    with torch.no_grad():
        out_a, out_b, out_null = (net(x, 10, segmap=s).sample for s in (a, b, torch.zeros_like(a)))
    assert torch.equal(encoder[0], encoder[1]) and torch.equal(encoder[1], encoder[2])  # encoder blind to the mask
    assert not torch.allclose(out_a, out_b) and not torch.allclose(out_null, out_a)
    # the concatenated null condition is the all-zero one-hot
    with torch.no_grad():
        assert torch.allclose(out_null, net(torch.cat([x, torch.zeros_like(a)], 1), 10).sample, atol=1e-4)


class _FakeScheduler:
    def __init__(self):
        self.timesteps, self.init_noise_sigma, self.seen = torch.tensor([3]), 1.0, []

    def step(self, out, t, x, generator=None):
        self.seen.append(out)
        return SimpleNamespace(prev_sample=x)


class _EchoNet(torch.nn.Module):
    """eps = 2 * (mean of the condition), variance = 7 + mean of the condition, per pixel."""

    def forward(self, inp, t):
        m = inp[:, 3:].mean(1, keepdim=True)
        return SimpleNamespace(sample=torch.cat([(2 * m).expand(-1, 3, -1, -1), (7 + m).expand(-1, 3, -1, -1)], 1))


def test_guidance_combines_the_noise_channels_only():
    layout = channel_layout("mask", "image", 3, "learned")
    sched = _FakeScheduler()
    cond = _onehot(torch.ones(2, 4, 4, dtype=torch.long), 3)  # mean over channels = 1/3
    gens = [torch.Generator().manual_seed(i) for i in range(2)]
    denoise(_EchoNet(), layout, Sampler(sched, 1.0, True), cond, gens, guidance=1.5)
    out = sched.seen[0]
    eps_c, eps_u = 2 / 3, 0.0
    assert torch.allclose(out[:, :3], torch.full_like(out[:, :3], eps_u + 1.5 * (eps_c - eps_u)))
    assert torch.allclose(out[:, 3:], torch.full_like(out[:, 3:], 7 + 1 / 3))  # variance of the conditional pass


def test_mask_augment_keeps_class_ids_and_moves_masks():
    rng = np.random.default_rng(0)
    mask = np.zeros((32, 32), np.uint8)
    mask[4:14, 5:20], mask[18:30, 10:16], mask[0, 0] = 1, 2, 255
    changed = 0
    for seed in range(20):
        out = MaskAugment()(mask, np.random.default_rng(seed))
        assert out.dtype == np.uint8 and out.shape == mask.shape
        assert set(np.unique(out)) <= set(np.unique(mask)) | {0}
        changed += not np.array_equal(out, mask)
    assert changed >= 18
    identity = MaskAugment(rotation=0, translation=0, scale=(1, 1), flip=0)
    assert np.array_equal(identity(mask, rng), mask)
    flips = MaskAugment(rotation=0, translation=0, scale=(1, 1), flip=1.0)
    assert np.array_equal(flips(mask, rng), mask[::-1, ::-1])


@pytest.mark.slow
def test_mask_mode_trains_with_learned_variance_and_samples_the_condition_masks(data16, tmp_path):
    run = train(data16, out=tmp_path / "run", cond="mask", target="image", **TINY)
    info = json.loads((run / "run.json").read_text())
    assert info["args"]["variance"] == "learned" and info["layout"]["out_channels"] == 6
    assert json.loads((run / "unet" / "config.json").read_text())["_class_name"] == "SPADEUNet2DModel"
    manifest = sample(run, out=tmp_path / "synth", conditions=f"{data16}:val", steps=2, scheduler="ddim")
    real, synth = Dataset(data16), Dataset(tmp_path / "synth")
    synth.validate()
    assert manifest.source["guidance"] == 1.0 and synth.has_masks
    for stem, condition in manifest.source["condition_of"].items():
        assert np.array_equal(synth.read(stem).mask, real.read(condition).mask)
    aug = sample(
        run, out=tmp_path / "aug", conditions=f"{data16}:val", num=4, steps=2, scheduler="ddim", mask_augment=True
    )
    moved = 0
    for stem, condition in aug.source["condition_of"].items():
        m, src = Dataset(tmp_path / "aug").read(stem).mask, real.read(condition).mask
        assert set(np.unique(m)) <= set(np.unique(src)) | {0}
        moved += not np.array_equal(m, src)
    assert moved >= 3
    with pytest.raises(OptionError, match="--mask-augment"):
        sample(_box_run(data16, tmp_path), out=tmp_path / "x", num=1, steps=2, scheduler="ddim", mask_augment=True)


def _box_run(data16: Path, tmp_path: Path) -> Path:
    return train(data16, out=tmp_path / "box", cond="boxmask", target="image", max_steps=1, **TINY)


@pytest.mark.slow
def test_finetune_with_drop_rate_then_isdm_sampling_defaults(data16, tmp_path):
    base = train(data16, out=tmp_path / "base", cond="mask", target="image", **TINY)
    ft = train(data16, out=tmp_path / "ft", cond="mask", target="image", finetune=base, drop_rate=0.2, lr=0.0, **TINY)
    from safetensors.torch import load_file

    a = load_file(str(base / "unet_ema" / "diffusion_pytorch_model.safetensors"))
    b = load_file(str(ft / "unet" / "diffusion_pytorch_model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # lr 0: the finetune starts from base
    # ISDM's recipe, not the box-guided defaults: epsilon prediction, no self-conditioning, plain loss
    args = Run.open(base).args
    assert (args["prediction"], args["self_cond"], args["mask_loss_weight"], args["variance"]) == (
        "epsilon",
        False,
        1.0,
        "learned",
    )
    with pytest.raises(OptionError, match="--self-cond"):
        train(data16, out=tmp_path / "sc", cond="mask", target="image", self_cond=True, **TINY)
    assert run_defaults(Run.open(ft), "ddpm", None, None, None) == (300, True, 1.5)
    assert run_defaults(Run.open(base), "ddpm", None, None, None) == (300, True, 1.0)
    assert run_defaults(Run.open(base), "ddim", 10, None, None) == (10, False, 1.0)
    # 2 steps are too few to rescale (the last beta, 0.02*1000/2, would exceed 1): respaced instead
    assert run_defaults(Run.open(ft), "ddpm", 2, None, None) == (2, False, 1.5)
    manifest = sample(ft, out=tmp_path / "s", conditions=f"{data16}:test", steps=2)
    assert manifest.source["guidance"] == 1.5 and manifest.source["rescale"] is False
    with pytest.raises(OptionError, match="--finetune"):
        train(data16, out=tmp_path / "bad", cond="mask", target="image", finetune=_box_run(data16, tmp_path), **TINY)


@pytest.mark.slow
def test_all_latent_chain_in_pixel_space(data16, tmp_path):
    masks_run = train(data16, out=tmp_path / "masks", cond="none", target="mask", **TINY)
    image_run = train(data16, out=tmp_path / "images", cond="mask", target="image", **TINY)
    sample(masks_run, out=tmp_path / "masks-synth", num=3, scheduler="ddim", steps=2)
    masks = Dataset(tmp_path / "masks-synth")
    manifest = sample(
        image_run, out=tmp_path / "pairs", conditions=str(tmp_path / "masks-synth"), scheduler="ddim", steps=2
    )
    pairs = Dataset(tmp_path / "pairs")
    pairs.validate()
    assert len(pairs) == 3
    for stem, condition in manifest.source["condition_of"].items():
        assert np.array_equal(pairs.read(stem).mask, masks.read(condition).mask)


@pytest.fixture(scope="module")
def tiny_vae(tmp_path_factory) -> Path:
    """A random 2-level AutoencoderKL (factor 2, 4 latent channels) saved locally."""
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    vae = AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(8, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=16,
    )
    folder = tmp_path_factory.mktemp("vae") / "vae"
    vae.save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.mark.slow
def test_all_latent_chain_with_a_local_autoencoder(data16, tiny_vae, tmp_path):
    masks_run = train(data16, out=tmp_path / "masks", cond="none", target="mask", latent=tiny_vae, **TINY)
    image_run = train(data16, out=tmp_path / "images", cond="mask", target="image", latent=tiny_vae, **TINY)
    info = json.loads((image_run / "run.json").read_text())
    assert info["size"] == [16, 16] and info["latent"]["size"] == [8, 8] and info["latent"]["channels"] == 4
    assert json.loads((image_run / "unet" / "config.json").read_text())["in_channels"] == 4
    sample(masks_run, out=tmp_path / "masks-synth", num=2, scheduler="ddim", steps=2)
    masks = Dataset(tmp_path / "masks-synth")
    assert len(masks) == 2 and masks.has_masks and masks.read(masks.stems[0]).mask.shape == (16, 16)
    manifest = sample(
        image_run, out=tmp_path / "pairs", conditions=str(tmp_path / "masks-synth"), scheduler="ddim", steps=2
    )
    pairs = Dataset(tmp_path / "pairs")
    pairs.validate()
    for stem, condition in manifest.source["condition_of"].items():
        s = pairs.read(stem)
        assert s.image.shape == (16, 16, 3) and np.array_equal(s.mask, masks.read(condition).mask)


def test_mask_grey_levels_round_trip():
    from defectsynth.diffusion.latent import mask_to_rgb, rgb_to_mask

    ids = torch.randint(0, 5, (2, 6, 7), dtype=torch.uint8)
    x = mask_to_rgb(ids, 5)
    assert x.shape == (2, 3, 6, 7) and x.min() >= -1 and x.max() <= 1
    assert np.array_equal(rgb_to_mask(x + 0.2 * (torch.rand_like(x) - 0.5), 5), ids.numpy())  # within half a level


def test_cli_maps_the_mask_mode_options(runner, tmp_path):
    from unittest import mock

    from defectsynth.cli import app
    from defectsynth.data import Manifest
    from defectsynth.data.model import make_classes

    with mock.patch("defectsynth.diffusion.training.train", return_value=tmp_path) as core:
        result = runner.invoke(
            app,
            [
                "train",
                "data/toy",
                "--out",
                "r",
                "--cond",
                "mask",
                "--target",
                "image",
                "--latent",
                "vae",
                "--finetune",
                "runs/base",
                "--drop-rate",
                "0.2",
                "--no-progress",
            ],
        )
    assert result.exit_code == 0, result.output
    kw = core.call_args.kwargs
    assert (kw["cond"], kw["target"], kw["latent"], kw["variance"], kw["drop_rate"]) == (
        "mask",
        "image",
        Path("vae"),
        None,
        0.2,
    )
    manifest = Manifest("s", make_classes(["a"]))
    with mock.patch("defectsynth.diffusion.sampling.sample", return_value=manifest) as core:
        assert (
            runner.invoke(
                app, ["sample", "r", "--out", "s", "--mask-augment", "--no-rescale", "--no-progress"]
            ).exit_code
            == 0
        )
        assert (
            core.call_args.kwargs["mask_augment"],
            core.call_args.kwargs["rescale"],
            core.call_args.kwargs["guidance"],
        ) == (True, False, None)
        assert runner.invoke(app, ["sample", "r", "--out", "s", "--no-progress"]).exit_code == 0
        assert (
            core.call_args.kwargs["mask_augment"],
            core.call_args.kwargs["rescale"],
            core.call_args.kwargs["steps"],
        ) == (False, None, None)


def test_bad_mask_mode_input_is_one_line_and_exit_code_2(runner, data16, tmp_path):
    from defectsynth.cli import app

    result = runner.invoke(
        app,
        ["train", str(data16), "--out", str(tmp_path / "r"), "--cond", "mask", "--target", "joint", "--no-progress"],
    )
    assert result.exit_code == 2 and "--cond mask generates images for masks" in result.output
    result = runner.invoke(
        app,
        [
            "train",
            str(data16),
            "--out",
            str(tmp_path / "r2"),
            "--cond",
            "mask",
            "--target",
            "image",
            "--latent",
            str(tmp_path),
            "--no-progress",
        ],
    )
    assert result.exit_code == 2 and "--latent" in result.output and "config.json" in result.output


def test_a_local_vqmodel_encodes_and_decodes(tmp_path):
    from diffusers import VQModel

    from defectsynth.diffusion.latent import Autoencoder

    torch.manual_seed(0)
    VQModel(
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(8, 16),
        layers_per_block=1,
        latent_channels=3,
        num_vq_embeddings=16,
        norm_num_groups=8,
        sample_size=16,
    ).save_pretrained(tmp_path / "vq")
    ae = Autoencoder.load(tmp_path / "vq")
    z = ae.encode(torch.rand(2, 3, 16, 16) * 2 - 1)
    assert ae.kind == "VQModel" and z.shape == (2, 3, 8, 8) and ae.info((16, 16))["size"] == [8, 8]
    x = ae.decode(z)
    assert x.shape == (2, 3, 16, 16) and x.min() >= -1 and x.max() <= 1
    with pytest.raises(OptionError, match="divisible"):
        ae.latent_size((15, 16))
