"""The Stable-Diffusion backend of ``sample --backend sd-adapter`` and ``filter --by clip``
(formerly ``defectsynth.controllable``, a deprecated alias for one release). Controllable Stable
Diffusion (VOC paper, Che et al.): SDXL + T2I-Adapter / ControlNet redraws real images under a blended visual prior with
class-appended prompts; the real masks stay.

Needs the optional extra ``pip install 'defectsynth[sd]'`` (transformers) and local weights
(docs/sd-adapter.md). Importing this package is cheap; models load only when called.
"""

from defectsynth.sd_backend.clip_filter import clip_scores, filter_by_clip
from defectsynth.sd_backend.generate import sample_sd
from defectsynth.sd_backend.priors import blend_priors, canny_prior, mask_prior
from defectsynth.sd_backend.prompts import build_prompt, class_prompt

__all__ = [
    "blend_priors", "build_prompt", "canny_prior", "class_prompt", "clip_scores", "filter_by_clip",
    "mask_prior", "sample_sd",
]  # fmt: skip
