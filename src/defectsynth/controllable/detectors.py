"""Learned visual-prior detectors, loaded from local safetensors only.

Line art (``--prior lineart``): the informative-drawings generator of Chan et al. (2022), the
network behind controlnet_aux's ``LineartDetector`` and the public ``t2i-adapter-lineart-sdxl``
condition images: reflection-padded 7x7 conv (64) -> two stride-2 convs (128, 256) -> 3 residual
blocks -> two transposed convs (128, 64) -> 7x7 conv to 1 channel -> sigmoid, with
InstanceNorm2d (no affine) after every conv. Its output is dark lines on white; the prior is
``1 - output`` (white lines on black), as controlnet_aux returns ``255 - map``.

Weights: ``<weights_dir>/lineart.safetensors`` holding the state dict of ``sk_model.pth`` from
``lllyasviel/Annotators`` (same parameter names: ``model0.1.weight``, ``model2.0.conv_block.1.weight``
...). defectsynth never unpickles; docs/sd-adapter.md shows the one-off conversion.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from defectsynth.errors import MissingDependencyError

LINEART_FILE = "lineart.safetensors"


class _ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels), nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class LineartGenerator(nn.Module):
    """Informative-drawings generator: (B, 3, H, W) in [0, 1] -> (B, 1, H, W) in [0, 1] (lines dark).

    H and W should be multiples of 4 (two stride-2 stages); other sizes come back cropped/padded by
    the transposed convolutions, so :func:`run_lineart` resizes the output to the input size.
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 1, residual_blocks: int = 3):
        super().__init__()
        self.model0 = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(in_channels, 64, 7), nn.InstanceNorm2d(64), nn.ReLU(inplace=True))
        down: list[nn.Module] = []
        for c_in, c_out in ((64, 128), (128, 256)):
            down += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.InstanceNorm2d(c_out), nn.ReLU(inplace=True)]
        self.model1 = nn.Sequential(*down)
        self.model2 = nn.Sequential(*[_ResidualBlock(256) for _ in range(residual_blocks)])
        up: list[nn.Module] = []
        for c_in, c_out in ((256, 128), (128, 64)):
            up += [nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1), nn.InstanceNorm2d(c_out), nn.ReLU(inplace=True)]
        self.model3 = nn.Sequential(*up)
        self.model4 = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(64, out_channels, 7), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model4(self.model3(self.model2(self.model1(self.model0(x)))))


def load_lineart(weights_dir: str | Path | None, device: str = "cpu") -> LineartGenerator:
    """The line-art generator with the weights of ``<weights_dir>/lineart.safetensors``; one error line if missing."""
    from defectsynth.metrics.weights import load_weights

    if weights_dir is None:
        raise MissingDependencyError(
            f"--prior lineart needs the line-art detector weights: give --prior-weights DIR holding {LINEART_FILE} (docs/sd-adapter.md#priors)"
        )
    path = Path(weights_dir) / LINEART_FILE
    if not path.is_file():
        raise MissingDependencyError("line-art detector weights missing: convert sk_model.pth to this file (docs/sd-adapter.md#priors)", path)
    net = LineartGenerator()
    load_weights(net, path, "lineart")
    return net.eval().to(device)


@torch.no_grad()
def run_lineart(net: LineartGenerator, image: np.ndarray) -> np.ndarray:
    """Line-art prior of an (H, W, 3) uint8 RGB image: (H, W) float32 in [0, 1], lines bright."""
    device = next(net.parameters()).device
    x = torch.from_numpy(np.ascontiguousarray(image)).to(device=device, dtype=torch.float32).permute(2, 0, 1)[None] / 255.0
    line = net(x)[:, :, : image.shape[0], : image.shape[1]]
    if line.shape[-2:] != image.shape[:2]:
        line = nn.functional.interpolate(line, size=image.shape[:2], mode="bilinear", align_corners=False)
    return (1.0 - line[0, 0]).clamp(0.0, 1.0).float().cpu().numpy()
