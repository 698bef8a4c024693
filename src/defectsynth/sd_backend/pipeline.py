"""Loading Stable Diffusion XL pipelines (T2I-Adapter or ControlNet) and generating with them.

Everything is loaded from folders on disk (``local_files_only=True``, ``use_safetensors=True``:
nothing is unpickled): folders written by ``save_pretrained``, or Hub ids (``owner/name``), which
:func:`defectsynth.hub.resolve` downloads into the Hugging Face cache first (JSON, safetensors and
tokenizer files only; ``HF_HUB_OFFLINE=1`` reads the cache alone).

- ``--base DIR``: an SDXL pipeline folder (``model_index.json``, ``unet/``, ``vae/``,
  ``text_encoder/``, ``text_encoder_2/``, ``tokenizer/``, ``tokenizer_2/``, ``scheduler/``),
  e.g. ``stabilityai/stable-diffusion-xl-base-1.0``.
- ``--adapter DIR``: a ``T2IAdapter`` folder (``config.json`` + safetensors), e.g.
  ``TencentARC/t2i-adapter-lineart-sdxl-1.0``; or ``--controlnet DIR``: a ``ControlNetModel``
  folder, e.g. ``diffusers/controlnet-canny-sdxl-1.0``.

Every generated image has its own generator seeded from ``(seed, index)`` (:func:`defectsynth.seeds.derived_seed`),
drawn on the CPU, so an image does not depend on the batch size, the batch it landed in, or the
device it ran on (up to floating-point differences between devices).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from defectsynth.devices import pick_device
from defectsynth.errors import MissingDependencyError, OptionError, first_line

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'defectsynth[sd]'"


def require_transformers() -> None:
    """One error line when the optional ``[sd]`` extra (transformers) is not installed."""
    try:
        import transformers  # noqa: F401
    except ImportError:
        raise MissingDependencyError(f"the Stable Diffusion backend needs transformers: {INSTALL_HINT}") from None


def check_folder(path: str | Path | None, option: str, marker: str) -> Path:
    """``path`` as a Path if it is a folder holding ``marker``, else one error line naming ``option``."""
    if path is None:
        raise OptionError(f"{option} is required")
    from defectsynth.hub import MODEL_FILES, PIPELINE_FILES, resolve

    path = resolve(
        path, option, PIPELINE_FILES if marker == "model_index.json" else MODEL_FILES
    )  # a Hub id: its cached download
    if not path.is_dir():
        raise MissingDependencyError(f"{option}: model folder not found (download it first, docs/sd-adapter.md)", path)
    if not (path / marker).is_file():
        raise MissingDependencyError(f"{option}: not a model folder, {marker} is missing (docs/sd-adapter.md)", path)
    return path


def resolve_dtype(dtype: str, device: str):
    import torch

    if dtype == "auto":
        return torch.float16 if device.startswith("cuda") else torch.float32
    choices = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if dtype not in choices:
        raise OptionError(f"--dtype: choose auto, {', '.join(choices)}; got {dtype!r}")
    return choices[dtype]


@dataclass
class ControlledPipeline:
    """A loaded SDXL pipeline with its control model; ``kind`` is ``"adapter"`` or ``"controlnet"``."""

    pipe: Any
    kind: str
    device: str

    @property
    def size_multiple(self) -> int:
        """Height and width must be multiples of this (VAE and adapter / UNet downsampling)."""
        unet_levels = len(self.pipe.unet.config.block_out_channels) - 1
        multiple = self.pipe.vae_scale_factor * 2**unet_levels
        if self.kind == "adapter":
            multiple = max(multiple, int(self.pipe.adapter.total_downscale_factor))
        return multiple


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """Silence diffusers' and transformers' loading progress bars and the ``torch_dtype`` rename warning."""
    import diffusers.utils.logging as d_logging
    import transformers.utils.logging as t_logging

    restore = [m.enable_progress_bar for m in (d_logging, t_logging) if m.is_progress_bar_enabled()]
    d_logging.disable_progress_bar()
    t_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*torch_dtype.*", category=FutureWarning)
            yield
    finally:
        for enable in restore:
            enable()


def _load(loader, path: Path, what: str, **kwargs):
    try:
        with quiet_loading():
            return loader.from_pretrained(path, local_files_only=True, use_safetensors=True, **kwargs)
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as err:
        raise MissingDependencyError(f"cannot load the {what} ({first_line(err)})", path) from None


def load_pipeline(
    base: str | Path,
    adapter: str | Path | None = None,
    controlnet: str | Path | None = None,
    device: str = "auto",
    dtype: str = "auto",
) -> ControlledPipeline:
    """Load SDXL + T2I-Adapter (``adapter``) or SDXL + ControlNet (``controlnet``) from local folders."""
    require_transformers()
    if (adapter is None) == (controlnet is None):
        raise OptionError("give exactly one of --adapter DIR (T2I-Adapter) or --controlnet DIR (ControlNet)")
    import diffusers

    device = pick_device(device)
    torch_dtype = resolve_dtype(dtype, device)
    base = check_folder(base, "--base", "model_index.json")
    if adapter is not None:
        control = _load(
            diffusers.T2IAdapter,
            check_folder(adapter, "--adapter", "config.json"),
            "T2I-Adapter",
            torch_dtype=torch_dtype,
        )
        pipe = _load(
            diffusers.StableDiffusionXLAdapterPipeline,
            base,
            "SDXL base pipeline",
            adapter=control,
            torch_dtype=torch_dtype,
        )
        kind = "adapter"
    else:
        control = _load(
            diffusers.ControlNetModel,
            check_folder(controlnet, "--controlnet", "config.json"),
            "ControlNet",
            torch_dtype=torch_dtype,
        )
        pipe = _load(
            diffusers.StableDiffusionXLControlNetPipeline,
            base,
            "SDXL base pipeline",
            controlnet=control,
            torch_dtype=torch_dtype,
        )
        kind = "controlnet"
    pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return ControlledPipeline(pipe, kind, device)


def generate(
    model: ControlledPipeline,
    prompts: list[str],
    conditions: list[np.ndarray],
    seeds: list[int],
    steps: int = 30,
    guidance: float = 7.5,
    conditioning_scale: float = 1.0,
    negative_prompt: str | None = None,
) -> list[np.ndarray]:
    """One image per prompt: ``conditions`` are (H, W, 3) uint8 prior images, all the same size,
    H and W multiples of ``model.size_multiple``; returns (H, W, 3) uint8 RGB images."""
    import torch
    from PIL import Image

    height, width = conditions[0].shape[:2]
    generators = [torch.Generator("cpu").manual_seed(s) for s in seeds]
    kwargs: dict[str, Any] = {
        "prompt": list(prompts),
        "image": [Image.fromarray(c) for c in conditions],
        "height": height,
        "width": width,
        "num_inference_steps": steps,
        "guidance_scale": guidance,
        "generator": generators,
        "output_type": "np",
    }
    if negative_prompt:
        kwargs["negative_prompt"] = [negative_prompt] * len(prompts)
    kwargs["adapter_conditioning_scale" if model.kind == "adapter" else "controlnet_conditioning_scale"] = (
        conditioning_scale
    )
    with torch.no_grad():
        images = model.pipe(**kwargs).images
    return [np.rint(np.clip(im, 0.0, 1.0) * 255.0).astype(np.uint8) for im in images]
