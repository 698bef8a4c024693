"""Controllable Stable Diffusion backend (VOC paper, Che et al.): SDXL + T2I-Adapter / ControlNet
redraws real images under a blended visual prior with class-appended prompts; the real masks stay.

Needs the optional extra ``pip install 'defectsynth[sd]'`` (transformers) and local weights
(docs/sd-adapter.md). Importing this package is cheap; models load only when called.
"""

from defectsynth.controllable.clip_filter import clip_scores, filter_by_clip
from defectsynth.controllable.generate import parse_conditions, sample_sd
from defectsynth.controllable.priors import blend_priors, canny_prior, mask_prior
from defectsynth.controllable.prompts import build_prompt, class_prompt

__all__ = [
    "blend_priors", "build_prompt", "canny_prior", "class_prompt", "clip_scores", "filter_by_clip",
    "mask_prior", "parse_conditions", "sample_sd",
]  # fmt: skip
