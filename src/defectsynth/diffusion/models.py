"""Model factory: diffusers ``UNet2DModel`` sizes and the channel layout of a run.

Channel layout (BASD paper, section 3.3): the network input is the noisy target concatenated with
the condition, ``[target | condition]``; its output is epsilon for the target channels (and, with a
learned variance, as many variance channels after them).

- target ``joint``: RGB (3) + analog-bit mask (``num_bits(C)``); ``image``: RGB; ``mask``: bits.
- cond ``basd``: BASD (1) + analog-bit C-BASD (``num_bits(C)``); ``boxmask``: occupancy (1) +
  analog-bit class map; ``none``: nothing.
- self-conditioning (Chen, Zhang & Hinton, "Analog bits", section 3): the previous x_0 estimate
  (as many channels as the target) goes between them: ``[target | x_0 estimate | condition]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from diffusers import UNet2DModel

from defectsynth.encoding import num_bits
from defectsynth.errors import OptionError

CONDS = ("basd", "boxmask", "none")
TARGETS = ("joint", "image", "mask")
VARIANCES = ("fixed", "learned")

# name -> (block_out_channels, layers_per_block, index of the attention blocks (down; up mirrored), norm groups)
MODEL_SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"block_out_channels": (16, 32), "layers_per_block": 1, "attention": (), "norm_num_groups": 8},
    "small": {"block_out_channels": (32, 64, 128), "layers_per_block": 1, "attention": (2,), "norm_num_groups": 16},
    "base": {"block_out_channels": (64, 128, 256, 256), "layers_per_block": 2, "attention": (3,), "norm_num_groups": 32},
    # The BASD paper's network (the diffusers unconditional DDPM UNet): attention in the fifth down
    # block and the second up block, and in the middle block.
    "paper": {"block_out_channels": (128, 128, 256, 256, 512, 512), "layers_per_block": 2, "attention": (4,), "norm_num_groups": 32},
}


@dataclass(frozen=True)
class Layout:
    """Channel counts of a run. ``target``, ``self_cond`` and ``cond`` are input channels; ``out`` the network's output."""

    target_channels: int
    cond_channels: int
    out_channels: int
    mask_bits: int
    self_cond_channels: int = 0

    @property
    def in_channels(self) -> int:
        return self.target_channels + self.self_cond_channels + self.cond_channels


def channel_layout(cond: str, target: str, num_classes: int, variance: str, self_cond: bool = False) -> Layout:
    """Channel counts for ``cond`` x ``target`` with ``num_classes`` classes (background included)."""
    if cond not in CONDS:
        raise OptionError(f"--cond: expected one of {', '.join(CONDS)}, got {cond!r}")
    if target not in TARGETS:
        raise OptionError(f"--target: expected one of {', '.join(TARGETS)}, got {target!r}")
    if variance not in VARIANCES:
        raise OptionError(f"--variance: expected one of {', '.join(VARIANCES)}, got {variance!r}")
    bits = num_bits(num_classes)
    target_channels = {"joint": 3 + bits, "image": 3, "mask": bits}[target]
    cond_channels = 0 if cond == "none" else 1 + bits
    out = target_channels * (2 if variance == "learned" else 1)
    return Layout(target_channels, cond_channels, out, bits, target_channels if self_cond else 0)


def unet_config(model: str, size: tuple[int, int], layout: Layout) -> dict[str, Any]:
    """The ``UNet2DModel`` keyword arguments for ``model`` at ``size`` = (height, width)."""
    if model not in MODEL_SIZES:
        raise OptionError(f"--model: expected one of {', '.join(MODEL_SIZES)}, got {model!r}")
    spec = MODEL_SIZES[model]
    blocks = spec["block_out_channels"]
    factor = 2 ** (len(blocks) - 1)
    height, width = size
    if height % factor or width % factor:
        raise OptionError(
            f"--size: {width}x{height} must be divisible by {factor} for --model {model} "
            f"({len(blocks)} resolution levels); resize the dataset or pick a smaller model"
        )
    n = len(blocks)
    down = tuple("AttnDownBlock2D" if i in spec["attention"] else "DownBlock2D" for i in range(n))
    up = tuple("AttnUpBlock2D" if (n - 1 - i) in spec["attention"] else "UpBlock2D" for i in range(n))
    return {
        "sample_size": (height, width),
        "in_channels": layout.in_channels,
        "out_channels": layout.out_channels,
        "block_out_channels": tuple(blocks),
        "layers_per_block": spec["layers_per_block"],
        "down_block_types": down,
        "up_block_types": up,
        "norm_num_groups": spec["norm_num_groups"],
        "attention_head_dim": 8,
    }


def build_unet(config: dict[str, Any]) -> UNet2DModel:
    """A freshly initialised ``UNet2DModel`` from :func:`unet_config`'s dict."""
    return UNet2DModel(**config)
