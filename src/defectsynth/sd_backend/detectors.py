"""Learned visual-prior detectors, loaded from local safetensors only.

Line art (``--prior lineart``): the informative-drawings generator of Chan et al. (2022), the
network behind controlnet_aux's ``LineartDetector`` and the public ``t2i-adapter-lineart-sdxl``
condition images: reflection-padded 7x7 conv (64) -> two stride-2 convs (128, 256) -> 3 residual
blocks -> two transposed convs (128, 64) -> 7x7 conv to 1 channel -> sigmoid, with
InstanceNorm2d (no affine) after every conv. Its output is dark lines on white; the prior is
``1 - output`` (white lines on black), as controlnet_aux returns ``255 - map``.

Sketch (``--prior sketch``): PiDiNet (Su et al., 2021, "Pixel Difference Networks for Efficient
Edge Detection"), the table-5 model behind controlnet_aux's ``PidiNetDetector`` and the public
``t2i-adapter-sketch-sdxl`` condition images: 16 depthwise pixel-difference blocks in the
``carv4`` pattern (central, angular, radial difference, vanilla) x 4 stages of 60/120/240/240
channels, each stage reduced through a dilation module (CDCM, 24 channels) and a spatial attention
module (CSAM) to one edge map, the four fused by a 1x1 classifier; sigmoid. The sketch prior is
the fused map thresholded at 0.5 (``apply_filter=True`` in the adapter's model card). Like the
original, the network reads BGR input.

Weights: ``<weights_dir>/lineart.safetensors`` holding the state dict of ``sk_model.pth``, and
``<weights_dir>/sketch.safetensors`` holding the ``state_dict`` of ``table5_pidinet.pth`` without
its ``module.`` prefixes, both from ``lllyasviel/Annotators`` (same parameter names:
``model0.1.weight``..., ``init_block.weight``, ``block1_1.conv1.weight``, ``dilations.0.conv2_1.weight``...).
defectsynth never unpickles; docs/sd-adapter.md shows the one-off conversion.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from defectsynth.errors import MissingDependencyError

LINEART_FILE = "lineart.safetensors"
SKETCH_FILE = "sketch.safetensors"


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
        self.model0 = nn.Sequential(
            nn.ReflectionPad2d(3), nn.Conv2d(in_channels, 64, 7), nn.InstanceNorm2d(64), nn.ReLU(inplace=True)
        )
        down: list[nn.Module] = []
        for c_in, c_out in ((64, 128), (128, 256)):
            down += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.InstanceNorm2d(c_out), nn.ReLU(inplace=True)]
        self.model1 = nn.Sequential(*down)
        self.model2 = nn.Sequential(*[_ResidualBlock(256) for _ in range(residual_blocks)])
        up: list[nn.Module] = []
        for c_in, c_out in ((256, 128), (128, 64)):
            up += [
                nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1),
                nn.InstanceNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]
        self.model3 = nn.Sequential(*up)
        self.model4 = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(64, out_channels, 7), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model4(self.model3(self.model2(self.model1(self.model0(x)))))


def _load_detector(
    net: nn.Module, weights_dir: str | Path | None, prior: str, filename: str, original: str, device: str
) -> nn.Module:
    from defectsynth.metrics.weights import load_weights

    if weights_dir is None:
        raise MissingDependencyError(
            f"--prior {prior} needs detector weights: give --prior-weights DIR holding {filename} "
            "(docs/sd-adapter.md#priors)"
        )
    path = Path(weights_dir) / filename
    if not path.is_file():
        raise MissingDependencyError(
            f"{prior} detector weights missing: convert {original} to this file (docs/sd-adapter.md#priors)", path
        )
    load_weights(net, path, prior)
    return net.eval().to(device)


def load_lineart(weights_dir: str | Path | None, device: str = "cpu") -> LineartGenerator:
    """The line-art generator with the weights of ``<weights_dir>/lineart.safetensors``; one error line if missing."""
    return _load_detector(LineartGenerator(), weights_dir, "lineart", LINEART_FILE, "sk_model.pth", device)  # type: ignore[return-value]


def load_sketch(weights_dir: str | Path | None, device: str = "cpu") -> "PiDiNet":
    """PiDiNet with the weights of ``<weights_dir>/sketch.safetensors``; one error line if missing."""
    return _load_detector(PiDiNet(), weights_dir, "sketch", SKETCH_FILE, "table5_pidinet.pth", device)  # type: ignore[return-value]


def _to_tensor(net: nn.Module, image: np.ndarray) -> torch.Tensor:
    device = next(net.parameters()).device
    return (
        torch.from_numpy(np.ascontiguousarray(image)).to(device=device, dtype=torch.float32).permute(2, 0, 1)[None]
        / 255.0
    )


@torch.no_grad()
def run_lineart(net: LineartGenerator, image: np.ndarray) -> np.ndarray:
    """Line-art prior of an (H, W, 3) uint8 RGB image: (H, W) float32 in [0, 1], lines bright."""
    line = net(_to_tensor(net, image))[:, :, : image.shape[0], : image.shape[1]]
    if line.shape[-2:] != image.shape[:2]:
        line = nn.functional.interpolate(line, size=image.shape[:2], mode="bilinear", align_corners=False)
    return (1.0 - line[0, 0]).clamp(0.0, 1.0).float().cpu().numpy()


# -- PiDiNet (sketch) ------------------------------------------------------------------------------

# The 3x3 neighbour each tap is compared with in an angular difference: its clockwise neighbour
# (flattened indices 0..8 row by row; the centre compares with itself).
_CLOCKWISE = [3, 0, 1, 6, 4, 2, 7, 8, 5]
# A radial difference spreads taps 1..8 of the 3x3 kernel onto a 5x5 one: + on the outer ring, - on the inner ring.
_OUTER = [0, 2, 4, 10, 14, 20, 22, 24]
_INNER = [6, 7, 8, 11, 13, 16, 17, 18]
CARV4 = ["cd", "ad", "rd", "cv"] * 4  # the pixel-difference type of blocks 0..15 (table 5 model)


class PixelDifferenceConv(nn.Module):
    """A 3x3 convolution over pixel differences (Su et al., 2021, Section 3.1).

    ``cv``: vanilla. ``cd`` (central): sum_i w_i (x_i - x_centre). ``ad`` (angular):
    sum_i w_i (x_i - x_clockwise(i)). ``rd`` (radial): sum_i w_i (x_outer(i) - x_inner(i)) on a
    5x5 window. Padding keeps the size (zeros outside, as the original).
    """

    def __init__(self, op: str, in_channels: int, out_channels: int, groups: int = 1, bias: bool = False):
        super().__init__()
        self.op, self.groups = op, groups
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, 3, 3))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, conv = self.weight, nn.functional.conv2d
        if self.op == "cv":
            return conv(x, w, self.bias, padding=1, groups=self.groups)
        if self.op == "cd":
            return conv(x, w, self.bias, padding=1, groups=self.groups) - conv(
                x, w.sum(dim=(2, 3), keepdim=True), groups=self.groups
            )
        flat = w.flatten(2)
        if self.op == "ad":
            return conv(x, (flat - flat[:, :, _CLOCKWISE]).view_as(w), self.bias, padding=1, groups=self.groups)
        radial = flat.new_zeros(*flat.shape[:2], 25)
        radial[:, :, _OUTER] = flat[:, :, 1:]
        radial[:, :, _INNER] = -flat[:, :, 1:]
        return conv(x, radial.view(*w.shape[:2], 5, 5), self.bias, padding=2, groups=self.groups)


class _PDCBlock(nn.Module):
    """(max-pool 2 + 1x1 shortcut when ``stride`` 2) -> depthwise pixel-difference conv -> ReLU -> 1x1 conv,
    residual."""

    def __init__(self, op: str, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.stride = stride
        if stride > 1:
            self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
            self.shortcut = nn.Conv2d(in_channels, out_channels, kernel_size=1)
        self.conv1 = PixelDifferenceConv(op, in_channels, in_channels, groups=in_channels)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = self.pool(x)
        y = self.conv2(self.relu2(self.conv1(x)))
        return y + (self.shortcut(x) if self.stride > 1 else x)


class _CDCM(nn.Module):
    """Compact dilation convolution module: ReLU -> 1x1 -> sum of 3x3 convs dilated 5, 7, 9, 11."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=1)
        for k, d in enumerate((5, 7, 9, 11), 1):
            setattr(
                self,
                f"conv2_{k}",
                nn.Conv2d(out_channels, out_channels, kernel_size=3, dilation=d, padding=d, bias=False),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(self.relu1(x))
        return self.conv2_1(x) + self.conv2_2(x) + self.conv2_3(x) + self.conv2_4(x)


class _CSAM(nn.Module):
    """Compact spatial attention: x * sigmoid(conv3x3(conv1x1(ReLU(x)))) with 4 middle channels."""

    def __init__(self, channels: int):
        super().__init__()
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(channels, 4, kernel_size=1)
        self.conv2 = nn.Conv2d(4, 1, kernel_size=3, padding=1, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.sigmoid(self.conv2(self.conv1(self.relu1(x))))


class _MapReduce(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, 1, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class PiDiNet(nn.Module):
    """PiDiNet (table 5 model: carv4, 60 channels, CDCM 24, CSAM): (B, 3, H, W) BGR in [0, 1] ->
    list of 5 (B, 1, H, W) maps in [0, 1], the four side outputs and the fused edge map last."""

    def __init__(self, channels: int = 60, dilation: int = 24, ops: list[str] = CARV4):
        super().__init__()
        self.init_block = PixelDifferenceConv(ops[0], 3, channels)
        widths = [channels, 2 * channels, 4 * channels, 4 * channels]
        c_in = channels
        for stage, width in enumerate(widths, 1):
            for k in range(1 if stage == 1 else 0, 4):  # stage 1 has blocks 1_1..1_3, the others 4 blocks
                index = 4 * (stage - 1) + k
                name = f"block{stage}_{k if stage == 1 else k + 1}"
                setattr(self, name, _PDCBlock(ops[index], c_in, width, stride=2 if (stage > 1 and k == 0) else 1))
                c_in = width
        self.dilations = nn.ModuleList(_CDCM(w, dilation) for w in widths)
        self.attentions = nn.ModuleList(_CSAM(dilation) for _ in widths)
        self.conv_reduces = nn.ModuleList(_MapReduce(dilation) for _ in widths)
        self.classifier = nn.Conv2d(4, 1, kernel_size=1)

    def _stage(self, x: torch.Tensor, stage: int) -> torch.Tensor:
        for k in range(1, 4 if stage == 1 else 5):
            x = getattr(self, f"block{stage}_{k}")(x)
        return x

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        size = x.shape[-2:]
        features, y = [], self.init_block(x)
        for stage in range(1, 5):
            y = self._stage(y, stage)
            features.append(y)
        edges = []
        for i, feature in enumerate(features):
            edge = self.conv_reduces[i](self.attentions[i](self.dilations[i](feature)))
            edges.append(nn.functional.interpolate(edge, size, mode="bilinear", align_corners=False))
        edges.append(self.classifier(torch.cat(edges, dim=1)))
        return [torch.sigmoid(e) for e in edges]


@torch.no_grad()
def run_sketch(net: PiDiNet, image: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Sketch prior of an (H, W, 3) uint8 RGB image: (H, W) float32 in {0, 1}, the fused PiDiNet
    edge map above ``threshold`` (the network reads BGR, as the original)."""
    edge = net(_to_tensor(net, image[:, :, ::-1]))[-1][0, 0]
    return (edge > threshold).float().cpu().numpy()
