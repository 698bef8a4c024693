"""Diffusion in the latent space of a local diffusers autoencoder (``--latent DIR``): All-Latent's
latent variant (Lemons thesis chapter 6).

- ``DIR`` is a folder saved with ``save_pretrained``: ``AutoencoderKL`` or ``VQModel`` (the class
  named in its config.json). Nothing is downloaded.
- Images (B, 3, H, W) in [-1, 1] are encoded to ``scaling_factor * latent`` (the KL posterior's
  mode, so encoding is deterministic); samples are decoded with ``latent / scaling_factor``.
- Masks pass through the autoencoder as 3-channel images, as the thesis did: class id k of C
  classes becomes the grey level ``2k/(C-1) - 1`` on all three channels; decoding takes the channel
  mean and rounds to the nearest id.
- Mask conditions of a SPADE run (cond ``mask``) are resized to the latent grid (nearest).

The dataset is encoded once before training; random flips are not applied in latent space (a
flipped latent is not the latent of the flipped image).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from defectsynth.data.files import check_safetensors, read_json
from defectsynth.diffusion.conditioning import EncodedSet, images_to_tensor
from defectsynth.errors import DatasetError, OptionError, summary
from defectsynth.progress import track

AUTOENCODERS = ("AutoencoderKL", "VQModel")
ENCODE_BATCH = 8


@dataclass
class Autoencoder:
    """A loaded autoencoder: ``encode`` (B, 3, H, W) [-1, 1] -> (B, channels, H/factor, W/factor); ``decode`` back."""

    model: Any
    kind: str
    path: Path

    @classmethod
    def load(cls, path: str | Path) -> "Autoencoder":
        path = Path(path)
        config = path / "config.json"
        if not config.is_file():
            raise OptionError(f"--latent: {path} is not a saved diffusers autoencoder (config.json missing)")
        data = read_json(config)
        kind = data.get("_class_name") if isinstance(data, dict) else None
        if kind not in AUTOENCODERS:
            raise OptionError(f"--latent: {path} holds a {kind}, expected one of {', '.join(AUTOENCODERS)}")
        import diffusers

        check_safetensors(path / "diffusion_pytorch_model.safetensors")  # never a pickled .bin
        try:
            model = getattr(diffusers, kind).from_pretrained(path, use_safetensors=True).eval().requires_grad_(False)
        except (OSError, ValueError, RuntimeError, KeyError, TypeError) as err:
            raise DatasetError(f"--latent: cannot load the autoencoder ({summary(err)})", path) from None
        return cls(model, kind, path)

    @property
    def channels(self) -> int:
        return int(self.model.config.latent_channels)

    @property
    def factor(self) -> int:
        return 2 ** (len(self.model.config.block_out_channels) - 1)

    @property
    def scaling_factor(self) -> float:
        return float(getattr(self.model.config, "scaling_factor", 1.0) or 1.0)

    def latent_size(self, size: tuple[int, int]) -> tuple[int, int]:
        if size[0] % self.factor or size[1] % self.factor:
            raise OptionError(
                f"--latent: the image size {size[1]}x{size[0]} must be divisible by the autoencoder's factor "
                f"{self.factor}"
            )
        return size[0] // self.factor, size[1] // self.factor

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        device = next(self.model.parameters()).device
        x = x.to(device)
        z = self.model.encode(x).latent_dist.mode() if self.kind == "AutoencoderKL" else self.model.encode(x).latents
        return z * self.scaling_factor

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        device = next(self.model.parameters()).device
        return self.model.decode(z.to(device) / self.scaling_factor).sample.clamp(-1.0, 1.0)

    def info(self, size: tuple[int, int]) -> dict[str, Any]:
        """The run.json entry: where the autoencoder is and the latent shape."""
        return {
            "path": str(self.path.resolve()),
            "class": self.kind,
            "channels": self.channels,
            "factor": self.factor,
            "scaling_factor": self.scaling_factor,
            "size": list(self.latent_size(size)),
        }


def mask_to_rgb(ids: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(B, H, W) uint8 class ids -> (B, 3, H, W) float32 grey levels in [-1, 1]; ignore (255) is background."""
    ids = torch.where(ids == 255, torch.zeros_like(ids), ids).float()
    grey = ids * (2.0 / max(1, num_classes - 1)) - 1.0
    return grey[:, None].expand(-1, 3, -1, -1).contiguous()


def rgb_to_mask(x: torch.Tensor, num_classes: int) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> (B, H, W) uint8: the nearest class id of the channel mean."""
    ids = ((x.float().mean(1) + 1.0) * (max(1, num_classes - 1) / 2.0)).round().clamp(0, num_classes - 1)
    return ids.to(torch.uint8).cpu().numpy()


def resize_condition(cond: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, *size), nearest (a 0-channel condition stays empty)."""
    if cond.shape[1] == 0:
        return cond.new_zeros(cond.shape[0], 0, *size)
    return F.interpolate(cond, size=size, mode="nearest")


class LatentSet:
    """An :class:`EncodedSet` with its targets encoded once: the same ``targets`` / ``conditions`` interface,
    at the latent size. ``pixel_size`` is the image size, ``size`` the latent one."""

    def __init__(self, data: EncodedSet, autoencoder: Autoencoder, progress: bool = False):
        self.data, self.cond, self.target, self.num_classes = data, data.cond, data.target, data.num_classes
        self.stems, self.boxes, self.pixel_size = data.stems, data.boxes, data.size
        self.image_channels = data.image_channels  # always 3: latents are of RGB images
        self.size = autoencoder.latent_size(data.size)
        chunks = list(torch.arange(len(data)).split(ENCODE_BATCH))
        self.latents = torch.cat(
            [autoencoder.encode(self.pixels(i)).cpu() for i in track(chunks, len(chunks), "encoding", progress)]
        )

    def pixels(self, index: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) [-1, 1]: the images, or for target ``mask`` the masks as grey images."""
        if self.target == "mask":
            return mask_to_rgb(self.data.masks[index], self.num_classes)
        return images_to_tensor(self.data.images[index])

    def __len__(self) -> int:
        return len(self.data)

    def targets(self, index: torch.Tensor) -> torch.Tensor:
        return self.latents[index]

    def conditions(self, index: torch.Tensor) -> torch.Tensor:
        return resize_condition(self.data.conditions(index), self.size)


def decode_samples(
    autoencoder: Autoencoder,
    z: torch.Tensor,
    target: str,
    num_classes: int,
    palette: np.ndarray,
    rows: int | None = None,
) -> list[tuple[np.ndarray, np.ndarray | None, int]]:
    """Decode a batch of latents to (RGB uint8 (H, W, 3), mask or None, 0) per sample, as
    :func:`denoising.decode`; rows: the batch shape the decoder always sees (:func:`denoising.fixed_rows`)."""
    from defectsynth.diffusion.conditioning import tensor_to_image
    from defectsynth.diffusion.denoising import fixed_rows

    x = fixed_rows(autoencoder.decode, z, rows)
    if target == "mask":
        return [(palette[m], m, 0) for m in rgb_to_mask(x, num_classes)]
    return [(tensor_to_image(xi), None, 0) for xi in x]
