"""Noise schedules: the trained DDPM schedule and the samplers built from it.

Training (DDPM, Ho et al.): T = 1000 linear betas from 1e-4 to 0.02, epsilon prediction; the
variance is ``fixed`` (posterior variance) or ``learned`` (learned range, Nichol & Dhariwal).

Sampling with N steps:

- ``ddpm`` (respaced, Nichol & Dhariwal section 4): keep N evenly spaced timesteps of the trained
  schedule (``round(linspace(0, T-1, N))``), with betas recomputed from the cumulative alphas,
  ``beta_t = 1 - alphabar_t / alphabar_prev``, and the learned variance interpolated between them.
  This is diffusers' ``DDPMScheduler`` with ``timestep_spacing="linspace"`` (checked in tests
  against the formula). The network is fed the original timestep.
- ``ddpm`` with ``rescale`` (ISDM's sampler): a fresh N-step linear schedule with betas from
  1e-4*T/N to 0.02*T/N, the network fed ``t * T / N`` (guided-diffusion's ``rescale_timesteps``).
- ``ddim`` (eta = 0) and ``dpm`` (DPM-Solver++, 2nd order multistep) for few steps; they use the
  epsilon channels only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler

from defectsynth.checks import check_choice
from defectsynth.errors import OptionError

TRAIN_TIMESTEPS = 1000
BETA_START = 1e-4
BETA_END = 0.02
SCHEDULERS = ("ddpm", "ddim", "dpm")
DEFAULT_STEPS = {"ddpm": TRAIN_TIMESTEPS, "ddim": 50, "dpm": 20}
# The sampler of box-guided and unconditional runs when none is given (trained_run.default_scheduler).
DEFAULT_SCHEDULER = "dpm"
# --rescale scales the betas by T/N: with N at or below this the last beta, 0.02*T/N, reaches 1.
RESCALE_MIN_STEPS = int(BETA_END * TRAIN_TIMESTEPS)
# --prediction -> diffusers' prediction_type
PREDICTION_TYPES = {"epsilon": "epsilon", "sample": "sample", "v": "v_prediction"}


def train_scheduler(variance: str, prediction: str = "epsilon") -> DDPMScheduler:
    """The trained schedule: 1000 linear steps, fixed-small or learned-range variance; the network
    predicts ``prediction`` (epsilon | sample | v)."""
    return DDPMScheduler(
        num_train_timesteps=TRAIN_TIMESTEPS,
        beta_start=BETA_START,
        beta_end=BETA_END,
        beta_schedule="linear",
        variance_type="learned_range" if variance == "learned" else "fixed_small",
        prediction_type=PREDICTION_TYPES[prediction],
        clip_sample=True,
        timestep_spacing="linspace",
    )


@dataclass
class Sampler:
    """A scheduler ready for one batch plus how the network sees its timesteps.

    ``model_time(t)`` is the value fed to the network; ``learned`` tells whether the network's extra
    variance channels are passed to ``scheduler.step`` (DDPM only).
    """

    scheduler: DDPMScheduler | DDIMScheduler | DPMSolverMultistepScheduler
    time_scale: float
    passes_variance: bool

    @property
    def timesteps(self) -> torch.Tensor:
        return self.scheduler.timesteps

    def model_time(self, t: torch.Tensor) -> torch.Tensor:
        return t.float() * self.time_scale if self.time_scale != 1.0 else t


def rescaled_scheduler(steps: int, variance: str, prediction: str = "epsilon") -> DDPMScheduler:
    """ISDM's ``--rescale`` schedule: N linear betas from 1e-4*T/N to 0.02*T/N."""
    scale = TRAIN_TIMESTEPS / steps
    return DDPMScheduler(
        num_train_timesteps=steps,
        beta_start=BETA_START * scale,
        beta_end=BETA_END * scale,
        beta_schedule="linear",
        variance_type="learned_range" if variance == "learned" else "fixed_small",
        prediction_type=PREDICTION_TYPES[prediction],
        clip_sample=True,
        timestep_spacing="linspace",
    )


def make_sampler(
    name: str, steps: int | None, variance: str, rescale: bool = False, prediction: str = "epsilon"
) -> Sampler:
    """A fresh :class:`Sampler` (schedulers keep per-run state: build one per batch)."""
    check_choice("--scheduler", name, SCHEDULERS)
    steps = DEFAULT_STEPS[name] if steps is None else steps
    if not 1 <= steps <= TRAIN_TIMESTEPS:
        raise OptionError(f"--steps: {steps} must lie in 1..{TRAIN_TIMESTEPS}")
    if rescale and name != "ddpm":
        raise OptionError(f"--rescale builds a new DDPM schedule and cannot be used with --scheduler {name}")
    if rescale and BETA_END * TRAIN_TIMESTEPS / steps >= 1.0:
        raise OptionError(
            f"--rescale needs --steps above {RESCALE_MIN_STEPS}: the last beta, "
            f"0.02*{TRAIN_TIMESTEPS}/{steps}, must stay below 1"
        )
    learned = variance == "learned"
    if rescale:
        scheduler = rescaled_scheduler(steps, variance, prediction)
        scheduler.set_timesteps(steps)
        return Sampler(scheduler, TRAIN_TIMESTEPS / steps, learned)
    base = train_scheduler(variance, prediction)
    if name == "ddpm":
        scheduler = base
    elif name == "ddim":
        scheduler = DDIMScheduler.from_config(
            base.config, variance_type=None, set_alpha_to_one=True, timestep_spacing="leading"
        )
    else:
        scheduler = DPMSolverMultistepScheduler.from_config(
            base.config, variance_type=None, algorithm_type="dpmsolver++", solver_order=2, timestep_spacing="linspace"
        )
    scheduler.set_timesteps(steps)
    return Sampler(scheduler, 1.0, learned and name == "ddpm")
