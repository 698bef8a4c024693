"""The Semantic Diffusion Model's network (Wang et al. 2022, "Semantic Image Synthesis via Diffusion
Models"; used by ISDM, Rabensteiner et al., and the Lemons thesis chapter 6) as a diffusers model.

The noisy image is the only input of the convolution path; the one-hot mask enters only through
spatially-adaptive group norms (SPADE, Park et al. 2019) in the middle and decoder blocks:

    SPADE(h, m) = GN(h) * (1 + gamma(m')) + beta(m'),   m' = nearest-resize(m, size of h)
    [gamma, beta](m') = conv3x3(ReLU(conv3x3_{C -> 128}(m')))        (GN: GroupNorm without affine)

The decoder residual block (SDM's ``SDMResBlock`` with scale-shift time embedding):

    h = conv3x3(SiLU(SPADE(x, m)))
    h = conv3x3(Dropout(SiLU(SPADE(h, m) * (1 + s) + b)))           [s, b] = Linear(SiLU(emb))
    out = skip(x) + h

The encoder uses diffusers' ``ResnetBlock2D`` (scale-shift time embedding) and never sees the mask;
attention blocks are diffusers' ``Attention`` with a plain group norm (as SDM's ``AttentionBlock``).
The null label of classifier-free guidance is the all-zero one-hot mask (SPADE then only adds the
learnt constant ``gamma(0), beta(0)``).

Input convention: ``forward(sample, t)`` takes ``[x_t | one-hot mask]`` concatenated on the channel
axis (``in_channels + label_channels`` channels), the same ``[target | condition]`` layout as the
box-guided runs, and splits it; or pass ``segmap`` separately. Output ``.sample``: (B, out_channels,
H, W), epsilon then (with a learned variance) the variance channels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.attention_processor import Attention
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.resnet import Downsample2D, ResnetBlock2D, Upsample2D
from diffusers.models.unets.unet_2d import UNet2DOutput
from torch import nn

SPADE_HIDDEN = 128


class SPADEGroupNorm(nn.Module):
    """GroupNorm without affine parameters, modulated by the mask: GN(h) * (1 + gamma) + beta."""

    def __init__(self, channels: int, label_channels: int, groups: int, hidden: int = SPADE_HIDDEN, eps: float = 1e-5):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels, eps=eps, affine=False)
        self.shared = nn.Sequential(nn.Conv2d(label_channels, hidden, 3, padding=1), nn.ReLU())
        self.gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, h: torch.Tensor, segmap: torch.Tensor) -> torch.Tensor:
        seg = F.interpolate(segmap.to(h.dtype), size=h.shape[-2:], mode="nearest")
        actv = self.shared(seg)
        return self.norm(h) * (1 + self.gamma(actv)) + self.beta(actv)


class SPADEResBlock(nn.Module):
    """SDM's decoder residual block: SPADE norms, scale-shift time embedding, 1x1 skip when channels change."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        temb_channels: int,
        label_channels: int,
        groups: int,
        dropout: float,
        hidden: int = SPADE_HIDDEN,
    ):
        super().__init__()
        self.in_norm = SPADEGroupNorm(in_channels, label_channels, groups, hidden)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb_channels, 2 * out_channels)
        self.out_norm = SPADEGroupNorm(out_channels, label_channels, groups, hidden)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # guided-diffusion's zero_module: the block starts as its skip
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor, temb: torch.Tensor, segmap: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.in_norm(x, segmap)))
        scale, shift = self.time_emb_proj(F.silu(temb))[:, :, None, None].chunk(2, dim=1)
        h = self.out_norm(h, segmap) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


def _attention(channels: int, head_dim: int, groups: int) -> Attention:
    return Attention(
        channels,
        heads=max(1, channels // head_dim),
        dim_head=min(head_dim, channels),
        norm_num_groups=groups,
        residual_connection=True,
        bias=True,
        upcast_softmax=True,
        _from_deprecated_attn_block=True,
    )


class SPADEUNet2DModel(ModelMixin, ConfigMixin):
    """Mask-conditioned UNet (SDM): encoder of ``ResnetBlock2D``, middle and decoder of :class:`SPADEResBlock`.

    block_out_channels: channels per resolution level; layers_per_block: residual blocks per level
    (the decoder has one more, as guided-diffusion); attention_levels: indices of the levels with
    self-attention (and always the middle block); attention_head_dim: channels per head;
    spade_hidden: channels of the SPADE shared conv (SDM: 128).
    """

    @register_to_config
    def __init__(
        self,
        sample_size: tuple[int, int] | int | None = None,
        in_channels: int = 3,
        out_channels: int = 6,
        label_channels: int = 2,
        block_out_channels: tuple[int, ...] = (16, 32),
        layers_per_block: int = 1,
        attention_levels: tuple[int, ...] = (),
        attention_head_dim: int = 8,
        norm_num_groups: int = 8,
        dropout: float = 0.0,
        spade_hidden: int = SPADE_HIDDEN,
    ):
        super().__init__()
        ch0, groups, temb = block_out_channels[0], norm_num_groups, 4 * block_out_channels[0]
        self.time_proj = Timesteps(ch0, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embedding = TimestepEmbedding(ch0, temb)
        self.conv_in = nn.Conv2d(in_channels, ch0, 3, padding=1)
        self.down = nn.ModuleList()
        skips, ch = [ch0], ch0
        for level, width in enumerate(block_out_channels):
            for _ in range(layers_per_block):
                block = [
                    ResnetBlock2D(
                        in_channels=ch,
                        out_channels=width,
                        temb_channels=temb,
                        groups=groups,
                        dropout=dropout,
                        time_embedding_norm="scale_shift",
                    )
                ]
                ch = width
                if level in attention_levels:
                    block.append(_attention(ch, attention_head_dim, groups))
                self.down.append(nn.ModuleList(block))
                skips.append(ch)
            if level != len(block_out_channels) - 1:
                self.down.append(nn.ModuleList([Downsample2D(ch, use_conv=True, padding=1, name="op")]))
                skips.append(ch)
        self.mid = nn.ModuleList(
            [
                SPADEResBlock(ch, ch, temb, label_channels, groups, dropout, spade_hidden),
                _attention(ch, attention_head_dim, groups),
                SPADEResBlock(ch, ch, temb, label_channels, groups, dropout, spade_hidden),
            ]
        )
        self.up = nn.ModuleList()
        for level in reversed(range(len(block_out_channels))):
            width = block_out_channels[level]
            for i in range(layers_per_block + 1):
                block = [SPADEResBlock(ch + skips.pop(), width, temb, label_channels, groups, dropout, spade_hidden)]
                ch = width
                if level in attention_levels:
                    block.append(_attention(ch, attention_head_dim, groups))
                if level and i == layers_per_block:
                    block.append(Upsample2D(ch, use_conv=True))
                self.up.append(nn.ModuleList(block))
        self.conv_norm_out = nn.GroupNorm(groups, ch, eps=1e-5)
        self.conv_out = nn.Conv2d(ch, out_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        segmap: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> UNet2DOutput | tuple[torch.Tensor]:
        """sample: (B, in_channels [+ label_channels], H, W); timestep: scalar or (B,); segmap: (B, label_channels, h,
        w)."""
        c, labels = self.config.in_channels, self.config.label_channels
        if segmap is None:
            if sample.shape[1] != c + labels:
                raise ValueError(
                    f"expected {c} + {labels} input channels ([x_t | one-hot mask]), got {sample.shape[1]}"
                )
            sample, segmap = sample[:, :c].contiguous(), sample[:, c:].contiguous()
        t = torch.as_tensor(timestep, device=sample.device)
        t = t.reshape(-1).expand(sample.shape[0]) if t.numel() == 1 else t
        emb = self.time_embedding(self.time_proj(t).to(sample.dtype))
        h = self.conv_in(sample)
        hs = [h]
        for block in self.down:
            for layer in block:
                h = layer(h, emb) if isinstance(layer, ResnetBlock2D) else layer(h)
            hs.append(h)
        h = self.mid[2](self.mid[1](self.mid[0](h, emb, segmap)), emb, segmap)
        for block in self.up:
            h = torch.cat([h, hs.pop()], dim=1)
            for layer in block:
                h = layer(h, emb, segmap) if isinstance(layer, SPADEResBlock) else layer(h)
        out = self.conv_out(F.silu(self.conv_norm_out(h)))
        return UNet2DOutput(sample=out) if return_dict else (out,)
