"""Deprecated: the Stable-Diffusion backend moved to :mod:`defectsynth.sd_backend`.

``from defectsynth.controllable import sample_sd, filter_by_clip, ...`` still works for one release
and warns; import from ``defectsynth.sd_backend`` instead. Only the package-level names below are
kept (the submodules moved without a copy).
"""

import warnings

from defectsynth.sd_backend import (
    blend_priors,
    build_prompt,
    canny_prior,
    class_prompt,
    clip_scores,
    filter_by_clip,
    mask_prior,
    sample_sd,
)  # fmt: skip

warnings.warn(
    "defectsynth.controllable is deprecated: import from defectsynth.sd_backend", DeprecationWarning, stacklevel=2
)

__all__ = [
    "blend_priors", "build_prompt", "canny_prior", "class_prompt", "clip_scores", "filter_by_clip",
    "mask_prior", "sample_sd",
]  # fmt: skip
