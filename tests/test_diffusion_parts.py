"""Unit tests of the diffusion parts: channel layout, conditioning flips, schedules, losses, state files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from defectsynth.data import Box
from defectsynth.diffusion.checkpoint import flatten_optimizer, rng_state, set_rng_state, unflatten_optimizer
from defectsynth.diffusion.conditioning import condition_tensor, flip, flip_boxes
from defectsynth.diffusion.denoising import denoise, fixed_rows, sample_generators
from defectsynth.diffusion.losses import diffusion_loss
from defectsynth.diffusion.models import build_unet, channel_layout, unet_config
from defectsynth.diffusion.schedules import make_sampler, train_scheduler
from defectsynth.errors import OptionError


@pytest.mark.parametrize(
    ("cond", "target", "variance", "expected"),
    [
        ("basd", "joint", "fixed", (6, 4, 6)),  # 5 classes -> 3 bits: RGB + 3 | BASD + 3
        ("boxmask", "image", "learned", (3, 4, 6)),
        ("none", "mask", "fixed", (3, 0, 3)),
        ("none", "joint", "learned", (6, 0, 12)),
    ],
)
def test_channel_layout(cond, target, variance, expected):
    layout = channel_layout(cond, target, 5, variance)
    assert (layout.target_channels, layout.cond_channels, layout.out_channels) == expected
    config = unet_config("tiny", (16, 24), layout)
    net = build_unet(config)
    out = net(torch.zeros(1, layout.in_channels, 16, 24), 3).sample
    assert out.shape == (1, layout.out_channels, 16, 24)


def test_paper_model_matches_the_basd_network():
    config = unet_config("paper", (128, 352), channel_layout("basd", "joint", 6, "fixed"))
    assert config["block_out_channels"] == (128, 128, 256, 256, 512, 512)
    assert config["down_block_types"][4] == "AttnDownBlock2D" and config["up_block_types"][1] == "AttnUpBlock2D"
    assert config["down_block_types"].count("AttnDownBlock2D") == 1 and config["layers_per_block"] == 2


def test_size_not_divisible_is_a_clear_error():
    with pytest.raises(OptionError, match="--size: 20x30 must be divisible by 4"):
        unet_config("small", (30, 20), channel_layout("basd", "joint", 3, "fixed"))


@pytest.mark.parametrize("cond", ["basd", "boxmask"])
@pytest.mark.parametrize(("h", "v"), [(True, False), (False, True), (True, True)])
def test_flipping_maps_equals_maps_of_flipped_boxes(cond, h, v):
    boxes = [Box(1, 2, 3, 10, 7), Box(2, 5, 1, 12, 14), Box(1, 0, 10, 3, 16)]
    size = (16, 20)
    maps = condition_tensor(boxes, size, cond, 3)[None]
    flipped = flip(maps, torch.tensor([h]), torch.tensor([v]))[0]
    assert torch.equal(flipped, condition_tensor(flip_boxes(boxes, size, h, v), size, cond, 3))


def _guided_diffusion_respacing(num_timesteps: int, count: int) -> list[int]:
    """guided-diffusion's space_timesteps(num_timesteps, [count]) for one section."""
    frac_stride = (num_timesteps - 1) / (count - 1)
    cur, taken = 0.0, []
    for _ in range(count):
        taken.append(round(cur))
        cur += frac_stride
    return sorted(taken)


@pytest.mark.parametrize("steps", [300, 50, 7])
def test_respaced_ddpm_equals_guided_diffusion(steps):
    sampler = make_sampler("ddpm", steps, "learned")
    kept = sorted(sampler.timesteps.tolist())
    assert kept == _guided_diffusion_respacing(1000, steps)
    ab = train_scheduler("learned").alphas_cumprod.double()
    # guided-diffusion: new betas from the cumulative alphas of the kept steps
    new_ab = ab[kept]
    new_betas = 1 - new_ab / torch.cat([torch.ones(1, dtype=torch.float64), new_ab[:-1]])
    scheduler = sampler.scheduler
    v = torch.tensor(0.3)
    for i in range(1, len(kept)):
        t = kept[i]
        posterior = new_betas[i] * (1 - new_ab[i - 1]) / (1 - new_ab[i])
        expected = 0.65 * torch.log(new_betas[i]) + 0.35 * torch.log(posterior)  # frac = (v + 1) / 2
        got = scheduler._get_variance(t, predicted_variance=v)
        assert torch.isclose(got.double(), expected, rtol=1e-4), t
        assert torch.isclose(scheduler._get_variance(t, variance_type="fixed_small").double(), posterior, rtol=1e-4)


@pytest.mark.parametrize("steps", [300, 25])
def test_rescale_is_a_fresh_schedule_with_scaled_betas_and_time(steps):
    sampler = make_sampler("ddpm", steps, "fixed", rescale=True)
    scale = 1000 / steps
    expected = torch.linspace(1e-4 * scale, 0.02 * scale, steps)
    assert torch.allclose(sampler.scheduler.betas, expected)
    assert sampler.timesteps.tolist() == list(range(steps - 1, -1, -1))
    t = sampler.timesteps[:3]
    assert torch.allclose(sampler.model_time(t), t.float() * scale)
    with pytest.raises(OptionError, match="--rescale"):
        make_sampler("ddim", steps, "fixed", rescale=True)
    with pytest.raises(OptionError, match="--rescale needs --steps above 20"):
        make_sampler("ddpm", 20, "fixed", rescale=True)


def test_hybrid_loss_trains_variance_only_through_the_bound():
    scheduler = train_scheduler("learned")
    x0 = torch.rand(4, 5, 8, 8) * 2 - 1
    noise = torch.randn_like(x0)
    t = torch.tensor([0, 1, 400, 999])
    xt = scheduler.add_noise(x0, noise, t)
    output = torch.randn(4, 10, 8, 8, requires_grad=True)
    diffusion_loss(output, noise, x0, xt, t, scheduler.betas, scheduler.alphas_cumprod, True).backward()
    eps = output.detach()[:, :5].clone().requires_grad_()
    torch.nn.functional.mse_loss(eps, noise).backward()
    # the mean (epsilon) gets exactly the L_simple gradient; the variance channels get the bound's
    assert torch.allclose(output.grad[:, :5], eps.grad * 1, atol=1e-7)
    assert output.grad[:, 5:].abs().sum() > 0


def test_optimizer_and_rng_state_round_trip():
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    tensors, meta = flatten_optimizer(opt.state_dict())
    assert all(isinstance(v, torch.Tensor) for v in tensors.values())
    restored = torch.optim.AdamW(model.parameters(), lr=1e-3)
    restored.load_state_dict(unflatten_optimizer(tensors, meta))
    a, b = opt.state_dict(), restored.state_dict()
    assert a["param_groups"] == b["param_groups"]
    assert all(torch.equal(a["state"][0][k], b["state"][0][k]) for k in a["state"][0])
    tensors, meta = rng_state()
    expected = (torch.rand(3), np.random.rand(2))
    set_rng_state(tensors, meta)
    assert torch.equal(torch.rand(3), expected[0]) and np.array_equal(np.random.rand(2), expected[1])


class _Oracle(torch.nn.Module):
    """Predicts the exact noise of x_t for a known x_0 (reading the timestep the network is fed)."""

    def __init__(self, x0: torch.Tensor, alphas_cumprod: torch.Tensor, time_scale: float):
        super().__init__()
        self.x0, self.ab, self.time_scale = x0, alphas_cumprod, time_scale

    def forward(self, inputs: torch.Tensor, t: torch.Tensor):
        from types import SimpleNamespace

        x = inputs[:, : self.x0.shape[1]]
        ab = self.ab[int(round(float(t) / self.time_scale))]
        return SimpleNamespace(sample=(x - ab.sqrt() * self.x0) / (1 - ab).sqrt())


@pytest.mark.parametrize(
    ("name", "steps", "rescale"), [("ddpm", 20, False), ("ddpm", 30, True), ("ddim", 20, False), ("dpm", 10, False)]
)
def test_every_sampler_recovers_x0_from_a_perfect_noise_predictor(name, steps, rescale):
    from defectsynth.diffusion.denoising import denoise, sample_generators

    layout = channel_layout("none", "joint", 5, "fixed")
    x0 = torch.rand(2, layout.target_channels, 8, 8) * 2 - 1
    sampler = make_sampler(name, steps, "fixed", rescale)
    oracle = _Oracle(x0, sampler.scheduler.alphas_cumprod, sampler.time_scale)
    x = denoise(oracle, layout, sampler, torch.zeros(2, 0, 8, 8), sample_generators(0, [0, 1]))
    assert torch.allclose(x, x0, atol=1e-4)


def test_padded_batches_make_each_sample_independent_of_its_batch():
    """A sample drawn in a partial batch padded to the full batch shape gets the very bytes it gets
    in a full batch; unpadded, batched convolutions of another batch size round differently."""
    torch.manual_seed(0)
    layout = channel_layout("basd", "joint", 4, "fixed", self_cond=True)
    net = build_unet(unet_config("tiny", (16, 16), layout)).eval()
    cond = torch.randn(4, layout.cond_channels, 16, 16)

    def draw(index, rows):
        return denoise(
            net,
            layout,
            make_sampler("ddpm", 3, "fixed", False, "sample"),
            cond[index],
            sample_generators(5, index),
            1.5,
            "sample",
            rows,
        )

    full, part = draw([0, 1, 2, 3], 4), draw([2, 3], 4)
    assert torch.equal(full[2:], part)
    x = torch.randn(3, 2)
    assert torch.equal(fixed_rows(lambda z: z * len(z), x, 5), x * 5) and torch.equal(
        fixed_rows(lambda z: z * len(z), x, None), x * 3
    )
