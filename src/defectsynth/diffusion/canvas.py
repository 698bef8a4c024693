"""Denoising a region larger than the network's window: overlapping windows on one canvas.

``sample --onto`` with a context run (:mod:`inpaint`) paints regions of any size with a network
trained on N x N windows. Every sample's region is covered by windows at a stride of at most N/2
(:func:`plan_windows`), all denoised together in one pass (MultiDiffusion, Bar-Tal et al. 2023,
eq. (3)-(5)): at every step the network runs on every window (the windows of a batch of samples
in network batches of a fixed number of rows), the per-window outputs (the prediction the
scheduler consumes, and so the self-conditioning x_0 estimate) are blended into the sample's
canvas with tent weights (:func:`window_weights`: a window's edge counts little next to another
window's centre), and the scheduler takes one step on the whole canvas. The canvas is the
bounding rectangle of the sample's windows; after every step the known pixels are put back
outside the region (``keep``, RePaint). A pixel covered by one window only gets that window's
output exactly (its share is w / w = 1), so a region that fits one window is denoised exactly as
one window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from diffusers.utils.torch_utils import randn_tensor

from defectsynth.data import Box
from defectsynth.diffusion.context import dilate
from defectsynth.diffusion.denoising import fixed_rows, take_step
from defectsynth.diffusion.models import Layout, network_input


def window_starts(lo: int, hi: int, n: int, limit: int) -> list[int]:
    """Starts of windows of length ``n`` covering [lo, hi) inside [0, limit): one centred on a span
    that fits, else evenly spaced from ``lo`` to ``hi - n`` at a stride of at most n // 2."""
    if hi - lo <= n:
        return [int(np.clip(lo - (n - (hi - lo)) // 2, 0, limit - n))]
    count = math.ceil((hi - lo - n) / max(1, n // 2)) + 1
    return sorted({int(round(s)) for s in np.linspace(lo, hi - n, count)})


def plan_windows(boxes: list[Box], size: tuple[int, int], crop: tuple[int, int], margin: int) -> list[tuple[int, int]]:
    """(x0, y0) of the windows that cover the region of ``boxes`` (each dilated by ``margin``) in an
    image of ``size`` = (H, W), in order: a box that lies inside the windows planned before it adds
    none (close boxes share a window); one that fits a window gets one centred on it; a larger one
    is tiled at a stride of at most half a window."""
    (height, width), (n_h, n_w) = size, crop
    covered = np.zeros(size, bool)
    windows: list[tuple[int, int]] = []
    for b in boxes:
        x0, y0, x1, y1 = dilate(b, margin, height, width)
        if covered[y0:y1, x0:x1].all():
            continue
        for cy in window_starts(y0, y1, n_h, height):
            for cx in window_starts(x0, x1, n_w, width):
                if (cx, cy) not in windows:
                    windows.append((cx, cy))
                    covered[cy : cy + n_h, cx : cx + n_w] = True
    return windows


def window_weights(n_h: int, n_w: int) -> torch.Tensor:
    """(n_h, n_w) float32 tent: 1 at the window's centre, falling linearly to 1/n at its edge (never 0)."""

    def tent(n: int) -> torch.Tensor:
        i = torch.arange(n, dtype=torch.float32) + 0.5
        return torch.minimum(i, n - i) / (n / 2)

    return tent(n_h)[:, None] * tent(n_w)[None, :]


@dataclass
class Area:
    """One sample's canvas: the bounding rectangle of its windows (top-left ``x0``, ``y0`` in the image)."""

    x0: int
    y0: int
    known: torch.Tensor  # (1, C_t, h, w) the known target in [-1, 1]
    region: torch.Tensor  # (1, 1, h, w) bool: the pixels to paint
    windows: list[tuple[int, int]]  # (x, y) in canvas coordinates
    conds: torch.Tensor  # (K, C_c, n_h, n_w) each window's condition
    shares: torch.Tensor | None = None  # (K, 1, n_h, n_w) each window's weight over the pixel's sum of weights

    def __post_init__(self) -> None:
        if self.shares is None:
            self.shares = window_shares(self.windows, tuple(self.known.shape[-2:]), tuple(self.conds.shape[-2:])).to(
                self.known.device
            )

    def cut(self, x: torch.Tensor) -> torch.Tensor:
        """(K, C, n_h, n_w): the windows of the (1, C, h, w) canvas ``x``."""
        n_h, n_w = self.conds.shape[-2:]
        return torch.cat([x[:, :, y : y + n_h, x0 : x0 + n_w] for x0, y in self.windows])

    def blend(self, outs: torch.Tensor) -> torch.Tensor:
        """(1, C, h, w): the (K, C, n_h, n_w) window outputs blended by their shares (0 where no window lies)."""
        n_h, n_w = outs.shape[-2:]
        canvas = outs.new_zeros((1, outs.shape[1], *self.known.shape[-2:]))
        for (x0, y), out, share in zip(self.windows, outs, self.shares):
            canvas[0, :, y : y + n_h, x0 : x0 + n_w] += share * out
        return canvas


def window_shares(windows: list[tuple[int, int]], size: tuple[int, int], crop: tuple[int, int]) -> torch.Tensor:
    """(K, 1, n_h, n_w) each window's tent weight over the sum of the weights of the windows at that pixel."""
    (n_h, n_w), weight = crop, window_weights(*crop)
    total = torch.zeros(size)
    for x0, y in windows:
        total[y : y + n_h, x0 : x0 + n_w] += weight
    return torch.stack([weight / total[y : y + n_h, x0 : x0 + n_w] for x0, y in windows])[:, None]


def run_windows(model, inputs: torch.Tensor, time: torch.Tensor, rows: int) -> torch.Tensor:
    """The network's output on every window of ``inputs``, ``rows`` windows at a time (the last batch
    padded), so a window's output does not depend on which windows share its batch."""
    outs = [
        fixed_rows(lambda z: model(z, time).sample, inputs[s : s + rows], rows) for s in range(0, len(inputs), rows)
    ]
    return torch.cat(outs)


def denoise_areas(
    model,
    layout: Layout,
    samplers: list,
    areas: list[Area],
    generators: list[torch.Generator],
    prediction,
    rows: int,
    keeps: list,
) -> list[torch.Tensor]:
    """Run the reverse process on every canvas of ``areas`` (one sampler, generator and ``keep`` each,
    :func:`~defectsynth.diffusion.sampling.denoise`); returns their (C_t, h, w) samples in [-1, 1]."""
    device, c = areas[0].known.device, layout.target_channels
    xs = [
        keep(
            randn_tensor(tuple(a.known.shape), generator=[g], device=device, dtype=torch.float32)
            * s.scheduler.init_noise_sigma,
            0,
        )
        for a, g, s, keep in zip(areas, generators, samplers, keeps)
    ]
    estimates = [torch.zeros_like(x) if layout.self_cond_channels else None for x in xs]
    for i, t in enumerate(samplers[0].timesteps):
        inputs = torch.cat(
            [
                network_input(a.cut(x), a.cut(e) if e is not None else None, a.conds)
                for a, x, e in zip(areas, xs, estimates)
            ]
        )
        outs = run_windows(model, inputs, samplers[0].model_time(t).to(device), rows).split(
            [len(a.windows) for a in areas]
        )
        for k, (a, sampler, out) in enumerate(zip(areas, samplers, outs)):
            xs[k], estimates[k] = take_step(
                sampler, prediction, a.blend(out), xs[k], t, estimates[k], [generators[k]], c
            )
            xs[k] = keeps[k](xs[k], i + 1)
    return [x[0].clamp(-1.0, 1.0) for x in xs]
