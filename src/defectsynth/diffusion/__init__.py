"""Box-guided joint image + mask diffusion: model factory, conditioning, schedules, losses,
checkpoints, the training loop (:func:`train`) and the sampler (:func:`sample`); mask-conditioned
synthesis (SDM/ISDM: :mod:`spade_unet`, :mod:`mask_augment`) and latent diffusion (:mod:`latent`).

A run folder (written by :func:`train`)::

    runs/<name>/
      run.json                   the arguments of train(), classes, channel layout, schedule, latent, versions
      unet/                      best weights (lowest epoch loss): config.json + diffusion_pytorch_model.safetensors
      unet_ema/                  EMA weights of the same epoch (sampling uses these by default)
      scheduler/scheduler_config.json
      checkpoint-<step>/         resume state: safetensors + JSON only, the last K kept
      log.jsonl                  one line per epoch: step, epoch, loss, best, lr, seconds
      previews/epoch-<e>.png     sample grids written during training
"""

from __future__ import annotations

from typing import Any

__all__ = ["sample", "train"]


def __getattr__(name: str) -> Any:  # lazy: importing the package does not import torch
    if name == "train":
        from defectsynth.diffusion.training import train

        return train
    if name == "sample":
        from defectsynth.diffusion.sampling import sample

        return sample
    raise AttributeError(name)
