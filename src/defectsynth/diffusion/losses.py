"""Training losses: L_simple (Ho et al.) and L_hybrid (Nichol & Dhariwal; used by SDM/ISDM).

- ``simple``: mean squared error between the true and the predicted noise.
- ``hybrid``: L_simple + L_vlb, where L_vlb is the variational bound term at timestep t, computed
  with the model mean detached (stop-gradient), so it only trains the variance channels. The
  variance is the learned range: log sigma^2 = v' log beta_t + (1 - v') log beta~_t with
  v' = (v + 1) / 2 (Nichol & Dhariwal eq. (15)). L_vlb is in bits per dimension: the KL between the
  true posterior q(x_{t-1} | x_t, x_0) and the model (t > 0) or the discretised Gaussian decoder
  NLL (t = 0), as in guided-diffusion's ``_vb_terms_bpd``.

Recipe options (all off by default = the plain recipe of the BASD paper's code):

- prediction target: ``epsilon`` (noise), ``sample`` (x_0) or ``v`` = sqrt(abar) eps - sqrt(1 - abar) x_0
  (Salimans & Ho); :func:`prediction_target` and :func:`predicted_x0`. Per channel group: one name
  per channel (:func:`channel_predictions`, e.g. v for the image channels and x_0 for the mask bits).
- channel weights: the mask channels' squared errors weighted by ``mask_loss_weight`` relative to
  the image channels (:func:`channel_weights`).
- min-SNR-gamma (Hang et al. 2023): per-sample weight min(SNR, gamma) / SNR for epsilon,
  min(SNR, gamma) / (SNR + 1) for v and min(SNR, gamma) for x_0, SNR = abar / (1 - abar)
  (:func:`min_snr_weights`).
"""

from __future__ import annotations

import math
from typing import Any

import torch


def _extract(values: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return values.to(t.device)[t].float()[:, None, None, None]


def normal_kl(mean1: torch.Tensor, logvar1: torch.Tensor, mean2: torch.Tensor, logvar2: torch.Tensor) -> torch.Tensor:
    """KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)), elementwise, in nats."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def _approx_standard_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def discretized_gaussian_log_likelihood(x: torch.Tensor, means: torch.Tensor, log_scales: torch.Tensor) -> torch.Tensor:
    """Log-likelihood of data in [-1, 1] quantised to 256 bins under N(means, e^(2 log_scales)), elementwise."""
    centered = x - means
    inv_stdv = torch.exp(-log_scales)
    cdf_plus = _approx_standard_normal_cdf(inv_stdv * (centered + 1.0 / 255.0))
    cdf_min = _approx_standard_normal_cdf(inv_stdv * (centered - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    cdf_delta = cdf_plus - cdf_min
    return torch.where(
        x < -0.999,
        log_cdf_plus,
        torch.where(x > 0.999, log_one_minus_cdf_min, torch.log(cdf_delta.clamp(min=1e-12))),
    )


def learned_range_log_variance(
    v: torch.Tensor, t: torch.Tensor, betas: torch.Tensor, alphas_cumprod: torch.Tensor
) -> torch.Tensor:
    """log sigma^2 of the learned range: interpolate between log beta~_t (clipped at t=0) and log beta_t."""
    prev = torch.cat([alphas_cumprod.new_ones(1), alphas_cumprod[:-1]])
    posterior_var = betas * (1.0 - prev) / (1.0 - alphas_cumprod)
    posterior_log_var = torch.log(torch.cat([posterior_var[1:2], posterior_var[1:]]))
    min_log = _extract(posterior_log_var, t)
    max_log = _extract(torch.log(betas), t)
    frac = (v + 1.0) / 2.0
    return frac * max_log + (1.0 - frac) * min_log


def vlb_terms(
    eps: torch.Tensor,
    v: torch.Tensor,
    x0: torch.Tensor,
    xt: torch.Tensor,
    t: torch.Tensor,
    betas: torch.Tensor,
    alphas_cumprod: torch.Tensor,
) -> torch.Tensor:
    """(B,) L_vlb in bits/dim for predicted noise ``eps`` (used as given) and variance output ``v``."""
    betas = betas.to(xt.device, torch.float64)
    alphas_cumprod = alphas_cumprod.to(xt.device, torch.float64)
    prev = torch.cat([alphas_cumprod.new_ones(1), alphas_cumprod[:-1]])
    ab, ab_prev, beta = _extract(alphas_cumprod, t), _extract(prev, t), _extract(betas, t)
    # 1. true posterior q(x_{t-1} | x_t, x_0): mean and (clipped) log variance, DDPM eq. (7)
    coef0 = beta * ab_prev.sqrt() / (1.0 - ab)
    coeft = (1.0 - ab_prev) * (1.0 - beta).sqrt() / (1.0 - ab)
    true_mean = coef0 * x0 + coeft * xt
    posterior_var_all = betas * (1.0 - prev) / (1.0 - alphas_cumprod)
    clipped = torch.cat([posterior_var_all[1:2], posterior_var_all[1:]])
    true_log_var = torch.log(_extract(clipped, t))
    # 2. model p(x_{t-1} | x_t): mean from the predicted x_0, learned-range log variance
    pred_x0 = (xt - (1.0 - ab).sqrt() * eps) / ab.sqrt()
    model_mean = coef0 * pred_x0 + coeft * xt
    model_log_var = learned_range_log_variance(v, t, betas, alphas_cumprod)
    # 3. KL for t > 0, decoder NLL for t == 0, both in bits
    kl = normal_kl(true_mean, true_log_var, model_mean, model_log_var).mean(dim=(1, 2, 3)) / math.log(2.0)
    nll = -discretized_gaussian_log_likelihood(x0, model_mean, 0.5 * model_log_var)
    nll = nll.mean(dim=(1, 2, 3)) / math.log(2.0)
    return torch.where(t == 0, nll, kl)


PREDICTIONS = ("epsilon", "sample", "v")

# What the network predicts (``prediction`` below): one name for every target channel, or one name
# per channel (a per-channel-group recipe, e.g. ("v", "v", "v", "sample") = v for RGB, x_0 for one mask bit).


def channel_predictions(
    prediction: str, mask_prediction: str | None, target: str, image_channels: int, target_channels: int
):
    """The prediction of every target channel: ``prediction`` for the image channels and
    ``mask_prediction`` (None: the same) for the analog-bit mask channels; one str when they agree."""
    if mask_prediction is None or mask_prediction == prediction or target == "image":
        return prediction
    if target == "mask":
        return mask_prediction
    return (prediction,) * image_channels + (mask_prediction,) * (target_channels - image_channels)


def scheduler_prediction(prediction) -> str:
    """The prediction type a diffusers scheduler steps with: the run's own when it is one for every
    channel, else epsilon (per-group outputs are turned into the noise they imply, :func:`predicted_eps`)."""
    return prediction if isinstance(prediction, str) else "epsilon"


def _groups(prediction, channels: int) -> list[tuple[str, slice]]:
    """Runs of channels that share a prediction: [(name, channel slice), ...]."""
    if isinstance(prediction, str):
        return [(prediction, slice(0, channels))]
    if len(prediction) != channels:
        raise ValueError(f"prediction names {len(prediction)} channels, the tensor has {channels}")
    runs, start = [], 0
    for i in range(1, channels + 1):
        if i == channels or prediction[i] != prediction[start]:
            runs.append((prediction[start], slice(start, i)))
            start = i
    return runs


def _per_group(fn, prediction, channels: int, *tensors: torch.Tensor) -> torch.Tensor:
    """``fn(name, *channel slices of tensors)`` for every group, concatenated along the channels."""
    groups = _groups(prediction, channels)
    if len(groups) == 1:
        return fn(groups[0][0], *tensors)
    return torch.cat([fn(name, *(x[:, where] for x in tensors)) for name, where in groups], dim=1)


def prediction_target(
    prediction, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, alphas_cumprod: torch.Tensor
) -> torch.Tensor:
    """What the network learns to output for ``x_t = sqrt(abar) x0 + sqrt(1 - abar) noise``
    (``prediction``: one name, or one per channel)."""

    def one(name, x0, noise):
        if name == "epsilon":
            return noise
        if name == "sample":
            return x0
        ab = _extract(alphas_cumprod, t)
        return ab.sqrt() * noise - (1.0 - ab).sqrt() * x0

    return _per_group(one, prediction, x0.shape[1], x0, noise)


def predicted_x0(
    prediction, output: torch.Tensor, xt: torch.Tensor, t: torch.Tensor, alphas_cumprod: torch.Tensor
) -> torch.Tensor:
    """The x_0 estimate implied by a network ``output`` (B, C, H, W) at timesteps ``t`` (B,), clamped to [-1, 1]."""
    ab = _extract(alphas_cumprod, t)

    def one(name, output, xt):
        if name == "epsilon":
            return (xt - (1.0 - ab).sqrt() * output) / ab.sqrt()
        if name == "sample":
            return output
        return ab.sqrt() * xt - (1.0 - ab).sqrt() * output

    return _per_group(one, prediction, output.shape[1], output, xt).clamp(-1.0, 1.0)


def predicted_eps(
    prediction, output: torch.Tensor, xt: torch.Tensor, t: torch.Tensor, alphas_cumprod: torch.Tensor
) -> torch.Tensor:
    """The noise implied by a network ``output`` (B, C, H, W) at timesteps ``t`` (B,), unclamped."""
    ab = _extract(alphas_cumprod, t)

    def one(name, output, xt):
        if name == "epsilon":
            return output
        if name == "sample":
            return (xt - ab.sqrt() * output) / (1.0 - ab).sqrt()
        return ab.sqrt() * output + (1.0 - ab).sqrt() * xt

    return _per_group(one, prediction, output.shape[1], output, xt)


def min_snr_weights(
    t: torch.Tensor, alphas_cumprod: torch.Tensor, gamma: float | None, prediction, channels: int | None = None
) -> torch.Tensor:
    """(B,) min-SNR-gamma loss weights (all ones when ``gamma`` is None); with ``channels``, (B, C):
    one weight per sample and channel (a per-channel ``prediction`` weights each group by its own rule)."""
    names = [prediction] * (channels or 1) if isinstance(prediction, str) else list(prediction)
    if gamma is None:
        weights = torch.ones(len(t), len(names), device=t.device)
    else:
        ab = alphas_cumprod.to(t.device, torch.float64)[t]
        snr = ab / (1.0 - ab)
        clipped = snr.clamp(max=gamma)
        weight = {"epsilon": clipped / snr, "v": clipped / (snr + 1.0), "sample": clipped}
        weights = torch.stack([weight[name] for name in names], dim=1).float()
    return weights if channels is not None else weights[:, 0]


def channel_weights(
    target_channels: int, target: str, mask_loss_weight: float, image_channels: int = 3
) -> torch.Tensor:
    """(C_t,) weights of the target channels: 1 for the image (RGB or grey), ``mask_loss_weight`` for the mask bits."""
    weights = torch.ones(target_channels)
    if target == "joint":
        weights[image_channels:] = mask_loss_weight
    elif target == "mask":
        weights[:] = mask_loss_weight
    return weights


def diffusion_loss(
    output: torch.Tensor,
    noise: torch.Tensor,
    x0: torch.Tensor,
    xt: torch.Tensor,
    t: torch.Tensor,
    betas: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    learned: bool,
    prediction: str = "epsilon",
    weights: torch.Tensor | None = None,
    snr_gamma: float | None = None,
    region: torch.Tensor | None = None,
) -> torch.Tensor:
    """Scalar loss: L_simple for a fixed variance, L_simple + L_vlb (mean detached) for a learned one.

    output: (B, C, H, W) network output (C = target channels, doubled when ``learned``).
    noise, x0, xt: (B, C_t, H, W). t: (B,) int64 timesteps. weights: (C_t,) channel weights
    (None: all 1). L_simple is the mean over channels and pixels of the weighted squared error of
    the ``prediction`` target, times the min-SNR weight of each sample; L_vlb sees the implied noise.
    region: (B, 1, H, W) pixel weights (context runs: 1 inside the region); L_simple is then the
    mean over the weighted pixels only (L_vlb stays the mean over all pixels).
    """
    out = output.float()
    eps, v = out.chunk(2, dim=1) if learned else (out, None)
    err = (eps - prediction_target(prediction, x0.float(), noise.float(), t, alphas_cumprod)) ** 2
    if weights is not None:
        err = err * weights.to(err.device)[None, :, None, None]
    snr = min_snr_weights(t, alphas_cumprod, snr_gamma, prediction, err.shape[1])
    if region is None:
        mse = (err * snr[:, :, None, None]).mean(dim=(1, 2, 3))
    else:
        region = region.to(err.device, err.dtype)
        mse = (err * snr[:, :, None, None] * region).sum(dim=(1, 2, 3)) / (
            region.sum(dim=(1, 2, 3)) * err.shape[1]
        ).clamp(min=1.0)
    if not learned:
        return mse.mean()
    implied = predicted_eps(prediction, eps.detach(), xt.float(), t, alphas_cumprod.to(xt.device).float())
    vb = vlb_terms(implied, v, x0.float(), xt.float(), t, betas, alphas_cumprod)
    return (mse + vb).mean()


def recipe_prediction(args: dict[str, Any], layout) -> str | tuple[str, ...]:
    """What the network of a run predicts (:func:`~defectsynth.diffusion.losses.channel_predictions`):
    one name, or one per target channel when ``mask_prediction`` differs; runs written before the
    options existed predict epsilon everywhere."""
    prediction = args.get("prediction", "epsilon")
    return channel_predictions(
        prediction, args.get("mask_prediction"), args["target"], layout.image_channels, layout.target_channels
    )
