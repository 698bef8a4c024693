"""The ``sample`` stage: draw a synthetic dataset folder with one of two backends.

``backend="diffusion"`` (default) samples a run trained by ``defectsynth train``
(:func:`defectsynth.diffusion.sampling.sample`); ``backend="sd-adapter"`` redraws real images with
SDXL + T2I-Adapter / ControlNet (:func:`defectsynth.sd_backend.generate.sample_sd`). This module
holds what both the CLI and ``defectsynth.sample(...)`` need: which options belong to which
backend, each backend's defaults (:data:`DEFAULTS`) and the refusals.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from defectsynth.errors import OptionError
from defectsynth.presets import PresetRequest

BACKENDS = ("diffusion", "sd-adapter")
# The preset table of each backend (defectsynth.presets.COMMANDS).
PRESET_COMMANDS = {"diffusion": "sample", "sd-adapter": "sample_sd"}
# Options of one backend only: refused with the other one.
DIFFUSION_ONLY = (
    "num",
    "rescale",
    "mask_augment",
    "scheduler",
    "ema",
    "compile",
    "force_guidance",
    "onto",
    "placement",
)
SD_ONLY = ("base", "adapter", "controlnet", "num_per_condition", "prior", "prior_weights", "blend", "captions",
           "captioner", "prompt_template", "negative_prompt", "conditioning_scale", "resolution", "device", "dtype",
           "preview")  # fmt: skip
# What an option left out (None) becomes, per backend. Diffusion steps, rescale and guidance
# stay None: they follow the run (defectsynth.diffusion.sampling.run_defaults).
DEFAULTS: dict[str, dict[str, Any]] = {
    "diffusion": {
        "batch_size": 16, "mask_augment": False, "placement": "keep", "ema": True, "compile": False,
        "force_guidance": False,
    },
    "sd-adapter": {
        "batch_size": 1, "steps": 30, "guidance": 7.5, "num_per_condition": 1, "prior": "lineart", "blend": "0.7,0.9",
        "conditioning_scale": 1.0, "resolution": 1024, "device": "auto", "dtype": "auto", "preview": 8,
    },
}  # fmt: skip


def sample(
    run: str | Path | None = None,
    *,
    out: str | Path,
    backend: str = "diffusion",
    conditions: str | None = None,
    num: int | None = None,
    plan: str | Path | None = None,
    steps: int | None = None,
    rescale: bool | None = None,
    scheduler: str | None = None,
    guidance: float | None = None,
    mask_augment: bool | None = None,
    onto: str | Path | None = None,
    placement: str | None = None,
    seed: int = 0,
    batch_size: int | None = None,
    ema: bool | None = None,
    overwrite: bool = False,
    compile: bool | None = None,
    progress: bool = False,
    force_guidance: bool | None = None,
    preset: str | PresetRequest | dict[str, Any] | None = None,
    base: str | Path | None = None,
    adapter: str | Path | None = None,
    controlnet: str | Path | None = None,
    num_per_condition: int | None = None,
    prior: str | None = None,
    prior_weights: str | Path | None = None,
    blend: str | tuple[float, float] | None = None,
    captions: str | Path | None = None,
    captioner: str | Path | None = None,
    prompt_template: str | None = None,
    negative_prompt: str | None = None,
    conditioning_scale: float | None = None,
    resolution: int | None = None,
    device: str | None = None,
    dtype: str | None = None,
    preview: int | None = None,
):
    """Draw a synthetic dataset into ``out``; returns its :class:`~defectsynth.data.Manifest`.

    backend: ``diffusion`` samples the run folder (or Hub id) ``run``; ``sd-adapter`` takes no
    ``run`` and redraws the ``conditions`` images with the SDXL pipeline ``base``. Options left out
    (None) take the backend's :data:`DEFAULTS` (batch size 16 vs 1; the sd-adapter's 30 steps and
    guidance 7.5; the diffusion run's own steps, rescale and guidance). An option of the other
    backend (:data:`DIFFUSION_ONLY`, :data:`SD_ONLY`) must be left out. preset: a paper preset name
    (it fills the options not given here), or what the CLI hands on (:class:`PresetRequest`).
    The options are those of :func:`defectsynth.diffusion.sampling.sample` and
    :func:`defectsynth.sd_backend.generate.sample_sd`.
    """
    options = {k: v for k, v in locals().items() if k not in ("run", "out", "backend", "preset")}
    if backend not in BACKENDS:
        raise OptionError(f"--backend: choose one of {', '.join(BACKENDS)}, got {backend!r}")
    check_run(backend, run)
    foreign = SD_ONLY if backend == "diffusion" else DIFFUSION_ONLY
    given = [f"--{k.replace('_', '-')}" for k in foreign if options[k] is not None]
    if given:
        owner = "sd-adapter" if backend == "diffusion" else "diffusion"
        raise OptionError(f"{', '.join(given)}: only with --backend {owner} (this is --backend {backend})")
    if isinstance(preset, str):  # the options given here win over the preset's
        preset = PresetRequest(preset, frozenset(k for k, v in options.items() if v is not None))
    chosen = {k: v for k, v in options.items() if k not in foreign}
    chosen.update({k: v for k, v in DEFAULTS[backend].items() if chosen[k] is None})
    if backend == "diffusion":
        from defectsynth.diffusion import sampling

        return sampling.sample(run, out=out, **chosen, preset=preset)
    return _sample_sd(out, chosen, preset)


def check_run(backend: str, run: str | Path | None) -> None:
    """RUN is needed by the diffusion backend and refused by the sd-adapter one."""
    if backend == "diffusion" and run is None:
        raise OptionError("RUN is required with --backend diffusion: a run folder written by `defectsynth train`")
    if backend == "sd-adapter" and run is not None:
        raise OptionError(f"--backend sd-adapter takes no RUN (got {run}): it redraws the --conditions images")


def _sample_sd(out: str | Path, chosen: dict[str, Any], preset):
    """The sd-adapter backend with the stage's options; the manifest of what it wrote."""
    from defectsynth.data import Dataset
    from defectsynth.sd_backend import generate

    if chosen["base"] is None:
        raise OptionError("--base (an SDXL pipeline folder or Hub id) is required with --backend sd-adapter")
    conditions, base = chosen.pop("conditions"), chosen.pop("base")
    written = generate.sample_sd(conditions, out, base, **chosen, preset=preset)
    return Dataset(written).manifest
