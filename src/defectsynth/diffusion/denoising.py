"""The reverse process of a trained network: per-sample generators, the denoising loop with
classifier-free guidance and self-conditioning, fixed batch shapes, and decoding a sample to
image + mask."""

from __future__ import annotations

import numpy as np
import torch
from diffusers.utils.torch_utils import randn_tensor

from defectsynth.data.colors import class_palette
from defectsynth.data.model import ClassInfo
from defectsynth.diffusion.conditioning import tensor_to_image
from defectsynth.diffusion.losses import predicted_eps, predicted_x0
from defectsynth.diffusion.models import Layout, network_input
from defectsynth.diffusion.schedules import Sampler
from defectsynth.encoding import decode_bits
from defectsynth.seeds import derived_seed


def sample_generators(seed: int, indices: list[int]) -> list[torch.Generator]:
    """One CPU generator per sample, seeded by (seed, sample index)."""
    return [torch.Generator().manual_seed(derived_seed(seed, i, 0x5A3F)) for i in indices]


def pad_rows(x: torch.Tensor, rows: int | None) -> torch.Tensor:
    """``x`` with zero rows appended up to ``rows`` (``None`` or fewer: ``x`` as it is)."""
    if rows is None or len(x) >= rows:
        return x
    return torch.cat([x, x.new_zeros((rows - len(x), *x.shape[1:]))])


def fixed_rows(fn, x: torch.Tensor, rows: int | None) -> torch.Tensor:
    """``fn(x)`` on ``x`` padded with zero rows to ``rows`` (``None``: as it is); the first ``len(x)`` rows.

    Batched convolutions round differently for different batch sizes (about 1e-6), enough to move
    a pixel by one level now and then; with one batch shape a sample's output does not depend on
    which samples share its batch (tested: bit-identical), so at one ``--batch-size`` a partial
    last batch, a rerun into the same folder and every process of a multi-process run give the
    same bytes (another ``--batch-size`` gives another shape).
    """
    return fn(pad_rows(x, rows))[: len(x)]


@torch.no_grad()
def denoise(
    model,
    layout: Layout,
    sampler: Sampler,
    cond: torch.Tensor,
    generators: list[torch.Generator],
    guidance: float = 1.0,
    prediction: str = "epsilon",
    rows: int | None = None,
    keep=None,
) -> torch.Tensor:
    """Run the reverse process; returns (B, C_t, H, W) samples in [-1, 1].

    cond: (B, C_c, H, W) on the model's device (C_c = 0 for unconditional runs). With ``guidance``
    != 1 the network also sees the null (zero) condition and the predicted channels (epsilon, x_0
    or v: ``prediction``) are combined as out_u + s * (out_c - out_u) (classifier-free guidance,
    not applied to variance channels). With self-conditioning (``layout.self_cond_channels``) the
    network sees the x_0 estimate of the previous step (zeros at the first). rows: each half of
    the network's batch (one half without guidance) is padded to that many rows (:func:`fixed_rows`).
    keep: ``keep(x, i)`` -> x, applied to the initial noise (i = 0) and after step i (i + 1):
    inpainting puts the known pixels back, noised to the level of ``timesteps[i]`` (:mod:`inpaint`).
    """
    device = cond.device
    b, (h, w) = len(generators), cond.shape[-2:]
    c = layout.target_channels
    x = randn_tensor((b, c, h, w), generator=generators, device=device, dtype=torch.float32)
    x = x * sampler.scheduler.init_noise_sigma
    if keep is not None:
        x = keep(x, 0)
    guided = guidance != 1.0
    conds = (
        [cond, torch.zeros_like(cond)] if guided else [cond]
    )  # guidance: the conditional and null halves in one forward
    n = max(b, rows or b)  # rows per half: each half padded on its own keeps every sample at its place
    estimate = torch.zeros_like(x) if layout.self_cond_channels else None
    for i, t in enumerate(sampler.timesteps):
        inputs = torch.cat([pad_rows(network_input(x, estimate, k), n) for k in conds])
        out = model(inputs, sampler.model_time(t).to(device)).sample
        if guided:
            out_c, out_u = out[:b], out[n : n + b]
            eps = out_u[:, :c] + guidance * (out_c[:, :c] - out_u[:, :c])
            out = torch.cat([eps, out_c[:, c:]], dim=1)
        else:
            out = out[:b]
        x, estimate = take_step(sampler, prediction, out, x, t, estimate, generators, c)
        if keep is not None:
            x = keep(x, i + 1)
    return x.clamp(-1.0, 1.0)


def take_step(
    sampler: Sampler,
    prediction,
    out: torch.Tensor,
    x: torch.Tensor,
    t,
    estimate,
    generators: list[torch.Generator],
    c: int,
):
    """One scheduler step of ``x`` (B, C_t, H, W) from the network's ``out``: (x, the x_0 estimate
    of self-conditioning, or ``estimate`` None as it is)."""
    times = t.reshape(1).repeat(len(x)).to(x.device)
    if estimate is not None:
        estimate = predicted_x0(prediction, out[:, :c], x, times, sampler.scheduler.alphas_cumprod)
    if not isinstance(prediction, str):  # per-group predictions: the scheduler steps with the noise they imply
        out = torch.cat(
            [predicted_eps(prediction, out[:, :c], x, times, sampler.scheduler.alphas_cumprod), out[:, c:]], dim=1
        )
    if not sampler.passes_variance:
        out = out[:, :c]
    return sampler.scheduler.step(out, t, x, generator=generators).prev_sample, estimate


def decode(
    x: torch.Tensor,
    target: str,
    num_classes: int,
    classes: list[ClassInfo],
    image_channels: int = 3,
) -> tuple[np.ndarray, np.ndarray | None, int]:
    """One (C_t, H, W) sample -> (RGB uint8 (H, W, 3), mask uint8 (H, W) or None, invalid codes);
    ``image_channels`` 1: the image channel is grey and written as R = G = B."""
    mask, invalid = None, 0
    if target in ("joint", "mask"):
        bits = x[image_channels:] if target == "joint" else x
        mask, invalid = decode_bits(bits.permute(1, 2, 0).float().cpu().numpy(), num_classes)
    if target == "mask":
        return class_palette(classes)[mask], mask, invalid
    return tensor_to_image(x[:image_channels]), mask, invalid
