"""Model factory: diffusers ``UNet2DModel`` sizes and the channel layout of a run.

Channel layout (BASD paper, section 3.3): the network input is the noisy target concatenated with
the condition, ``[target | condition]``; its output is epsilon for the target channels (and, with a
learned variance, as many variance channels after them).

- target ``joint``: RGB (3) + analog-bit mask (``num_bits(C)``); ``image``: RGB; ``mask``: bits. Grey-scale
  data (every image R = G = B) uses one image channel instead of three (``image_channels``).
- cond ``basd``: BASD (1) + analog-bit C-BASD (``num_bits(C)``); ``boxmask``: occupancy (1) +
  analog-bit class map; ``none``: nothing; ``mask``: the one-hot mask (C channels, background an
  ordinary class), which the SPADE UNet (:mod:`spade_unet`) splits off its input: it enters only
  through the SPADE norms, never the convolutions (SDM). Only with target ``image``.
- With a latent autoencoder (``--latent``) the target is its latent (``latent_channels``).
- self-conditioning (Chen, Zhang & Hinton, "Analog bits", section 3): the previous x_0 estimate
  (as many channels as the target) goes between them: ``[target | x_0 estimate | condition]``.
- context (``train --context``, :mod:`context`): the known image and the region after the
  condition: ``[target | x_0 estimate | condition | known image | region]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from diffusers import UNet2DModel

from defectsynth.checks import check_choice
from defectsynth.encoding import num_bits
from defectsynth.errors import DatasetError, OptionError, summary

CONDS = ("basd", "boxmask", "none", "mask")
TARGETS = ("joint", "image", "mask")
VARIANCES = ("fixed", "learned")

# name -> (block_out_channels, layers_per_block, index of the attention blocks (down; up mirrored), norm groups)
# tiny: 4 groups (4 channels a group at 16 channels). With 8 (2 a group), each GroupNorm removes nearly all
# of a channel's image mean, where a surface colour lives: on the demo's toy, v, lr 2e-3, 2000 steps,
# the samples drew one grey-brown surface (grey-level histogram L1 0.85) against two distinct grainy
# surfaces with 4 groups (0.59 at 1600 steps); docs/recipe-ablation.md, "third round".
MODEL_SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"block_out_channels": (16, 32), "layers_per_block": 1, "attention": (), "norm_num_groups": 4},
    "small": {"block_out_channels": (32, 64, 128), "layers_per_block": 1, "attention": (2,), "norm_num_groups": 16},
    "base": {
        "block_out_channels": (64, 128, 256, 256),
        "layers_per_block": 2,
        "attention": (3,),
        "norm_num_groups": 32,
    },
    # The BASD paper's network (the diffusers unconditional DDPM UNet): attention in the fifth down
    # block and the second up block, and in the middle block.
    "paper": {
        "block_out_channels": (128, 128, 256, 256, 512, 512),
        "layers_per_block": 2,
        "attention": (4,),
        "norm_num_groups": 32,
    },
}

# The SPADE UNet (cond ``mask``): tiny/small/base as above; ``paper`` = SDM's 256px configuration
# (github.com/WeilunWang/semantic-diffusion-model, README 256px flags: num_channels 256,
# channel_mult 1,1,2,2,4,4, num_res_blocks 2, attention_resolutions 32,16,8, num_head_channels 64,
# dropout 0.1, learn_sigma), which ISDM kept (Lemons thesis section 6.2.1: "mainly stay with the
# default configurations for the SDM"). Attention at 32,16,8 px of 256 = levels 3, 4, 5.
SPADE_PAPER: dict[str, Any] = {
    "block_out_channels": (256, 256, 512, 512, 1024, 1024),
    "layers_per_block": 2,
    "attention": (3, 4, 5),
    "norm_num_groups": 32,
    "attention_head_dim": 64,
    "dropout": 0.1,
}


@dataclass(frozen=True)
class Layout:
    """Channel counts of a run. ``target``, ``self_cond`` and ``cond`` are input channels; ``out`` the network's
    output."""

    target_channels: int
    cond_channels: int
    out_channels: int
    mask_bits: int
    self_cond_channels: int = 0
    image_channels: int = 3  # 1 for a grey-scale run (runs written before grey-scale existed: 3)
    context_channels: int = 0  # --context: the known image and the region, after the condition (diffusion/context.py)

    @property
    def in_channels(self) -> int:
        return self.target_channels + self.self_cond_channels + self.cond_channels + self.context_channels


def channel_layout(
    cond: str,
    target: str,
    num_classes: int,
    variance: str,
    latent_channels: int | None = None,
    self_cond: bool = False,
    image_channels: int = 3,
    context: bool = False,
) -> Layout:
    """Channel counts for ``cond`` x ``target`` with ``num_classes`` classes (background included);
    ``latent_channels``: the autoencoder's latent channels when diffusion runs on latents; ``self_cond``:
    room for the previous x_0 estimate; ``image_channels``: 3 (RGB) or 1 (grey-scale data); ``context``:
    room for the known image and the region (``train --context``)."""
    check_choice("--cond", cond, CONDS)
    check_choice("--target", target, TARGETS)
    check_choice("--variance", variance, VARIANCES)
    if cond == "mask" and target != "image":
        raise OptionError(f"--cond mask generates images for masks: it needs --target image, got {target!r}")
    if self_cond and cond == "mask":
        raise OptionError("--self-cond is not available with --cond mask: the SPADE UNet takes the noisy image alone")
    if latent_channels is not None and target == "joint":
        raise OptionError("--latent: diffusion on latents supports --target image or mask, not joint")
    bits = num_bits(num_classes)
    if image_channels not in (1, 3):
        raise OptionError(f"image channels must be 1 (grey) or 3 (RGB), got {image_channels}")
    if latent_channels is not None and image_channels != 3:
        raise OptionError("--latent: the autoencoder takes RGB images; use --channels rgb")
    ic = image_channels
    target_channels = (
        {"joint": ic + bits, "image": ic, "mask": bits}[target] if latent_channels is None else latent_channels
    )
    cond_channels = {"none": 0, "mask": num_classes}.get(cond, 1 + bits)
    out = target_channels * (2 if variance == "learned" else 1)
    return Layout(
        target_channels, cond_channels, out, bits, target_channels if self_cond else 0, ic, ic + 1 if context else 0
    )


def unet_config(model: str, size: tuple[int, int], layout: Layout) -> dict[str, Any]:
    """The ``UNet2DModel`` keyword arguments for ``model`` at ``size`` = (height, width)."""
    check_choice("--model", model, MODEL_SIZES)
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


def spade_config(model: str, size: tuple[int, int], layout: Layout) -> dict[str, Any]:
    """The :class:`SPADEUNet2DModel` keyword arguments for ``model`` at ``size`` = (height, width)."""
    base = unet_config("tiny" if model == "paper" else model, size, layout)  # checks the name
    spec = (
        SPADE_PAPER
        if model == "paper"
        else {
            **MODEL_SIZES[model],
            "attention_head_dim": 8,
            "dropout": 0.0,
            "spade_hidden": 32 if model == "tiny" else 128,
        }
    )
    factor = 2 ** (len(spec["block_out_channels"]) - 1)
    if size[0] % factor or size[1] % factor:
        raise OptionError(
            f"--size: {size[1]}x{size[0]} must be divisible by {factor} for --model {model}; resize the "
            "dataset or pick a smaller model"
        )
    return {
        "sample_size": base["sample_size"],
        "in_channels": layout.target_channels,
        "out_channels": layout.out_channels,
        "label_channels": layout.cond_channels,
        "block_out_channels": tuple(spec["block_out_channels"]),
        "layers_per_block": spec["layers_per_block"],
        "attention_levels": tuple(spec["attention"]),
        "attention_head_dim": spec["attention_head_dim"],
        "norm_num_groups": spec["norm_num_groups"],
        "dropout": spec["dropout"],
        "spade_hidden": spec.get("spade_hidden", 128),
    }


def network_config(cond: str, model: str, size: tuple[int, int], layout: Layout) -> dict[str, Any]:
    """:func:`spade_config` for cond ``mask``, else :func:`unet_config`."""
    return spade_config(model, size, layout) if cond == "mask" else unet_config(model, size, layout)


def build_unet(config: dict[str, Any]):
    """A freshly initialised network from :func:`network_config`'s dict (SPADE when it has ``label_channels``)."""
    if "label_channels" in config:
        from defectsynth.diffusion.spade_unet import SPADEUNet2DModel

        return SPADEUNet2DModel(**config)
    return UNet2DModel(**config)


def load_network(folder):
    """``from_pretrained`` of the class named in ``folder/config.json`` (UNet2DModel or SPADEUNet2DModel).

    Only ``diffusion_pytorch_model.safetensors`` is read (never a pickled ``.bin``); a missing,
    truncated or pickled file, or weights that do not fit the config, raise one DatasetError.
    """
    from pathlib import Path

    from defectsynth.data.files import check_safetensors, read_json

    folder = Path(folder)
    config = read_json(folder / "config.json")
    if not isinstance(config, dict):
        raise DatasetError("config.json must hold a JSON object", folder / "config.json")
    check_safetensors(folder / "diffusion_pytorch_model.safetensors")
    cls = UNet2DModel
    if config.get("_class_name") == "SPADEUNet2DModel":
        from defectsynth.diffusion.spade_unet import SPADEUNet2DModel as cls
    try:
        return cls.from_pretrained(folder, use_safetensors=True)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as err:
        raise DatasetError(f"cannot load the weights ({summary(err)})", folder) from None


class Float32Attention:
    """A diffusers attention processor that computes the whole attention block in float32 with
    autocast off (the weights are float32 master weights under autocast).

    Under CPU bf16 autocast torch's flash-attention backward in bf16 is about 5x slower than in
    float32 (the small model's 16 heads x 64 tokens x 8 dims: 18.5 ms against 3.6 ms forward +
    backward on a 2-core AMD EPYC), and its cost ate most of what the bf16 convolutions gained.
    """

    def __init__(self):
        from diffusers.models.attention_processor import AttnProcessor2_0

        self.inner = AttnProcessor2_0()

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        import torch

        def up(x):
            return None if x is None else x.float()

        with torch.autocast(hidden_states.device.type, enabled=False):
            return self.inner(attn, up(hidden_states), up(encoder_hidden_states), attention_mask, up(temb))


def use_float32_attention(model):
    """Give every diffusers ``Attention`` in ``model`` the :class:`Float32Attention` processor (in place)."""
    from diffusers.models.attention_processor import Attention

    for module in model.modules():
        if isinstance(module, Attention):
            module.set_processor(Float32Attention())
    return model


def compile_forward(model):
    """Compile ``model.forward`` with ``torch.compile`` in place (the first calls compile, minutes on
    a small CPU); the module, its state dict and ``save_pretrained`` stay those of the plain model.
    Compiled kernels may round differently from eager ones in the last bits."""
    import torch

    model.forward = torch.compile(model.forward)
    return model


def network_input(xt: torch.Tensor, self_cond: torch.Tensor | None, cond: torch.Tensor) -> torch.Tensor:
    """``[x_t | x_0 estimate (self-conditioning only) | condition]`` along the channels."""
    return torch.cat([xt, cond] if self_cond is None else [xt, self_cond, cond], dim=1)
