"""Preview grids: one row per sample, columns image | mask overlaid in class colours | boxes drawn.

Written during training (``previews/epoch-<e>.png``, a few DDIM steps from the EMA weights) and by
the demo.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from defectsynth.data.files import write_image
from defectsynth.data.model import Box, ClassInfo, default_color

PREVIEW_SAMPLES = 4
PREVIEW_STEPS = 25
PREVIEW_SAMPLER = "ddim"


def class_palette(classes: list[ClassInfo] | None) -> np.ndarray:
    """(256, 3) uint8 colours per class id: the dataset's colours, defaults elsewhere, background black."""
    palette = np.array([default_color(i) for i in range(256)], np.uint8)
    for cls in classes or []:
        palette[cls.id] = cls.color
    palette[0] = 0
    return palette


def preview_row(image: np.ndarray, mask: np.ndarray | None, boxes: list[Box], palette: np.ndarray) -> np.ndarray:
    """(H, 3W, 3) uint8: the image, the mask blended over it, the boxes drawn on it."""
    overlay = image.copy()
    if mask is not None:
        colours = palette[mask]
        defect = (mask > 0)[..., None]
        overlay = np.where(defect, (0.4 * image + 0.6 * colours).astype(np.uint8), image)
    boxed = image.copy()
    for b in boxes:
        cv2.rectangle(boxed, (b.x_min, b.y_min), (b.x_max - 1, b.y_max - 1), tuple(int(v) for v in palette[b.cls]), 1)
    return np.concatenate([image, overlay, boxed], axis=1)


def preview_grid(rows: list[np.ndarray], scale: int = 1) -> np.ndarray:
    """Stack rows with a 2-pixel white gap; upscale small images (nearest) for viewing."""
    gap = np.full((2, rows[0].shape[1], 3), 255, np.uint8)
    parts = [p for r in rows for p in (r, gap)][:-1]
    grid = np.concatenate(parts, axis=0)
    if scale > 1:
        grid = cv2.resize(grid, (grid.shape[1] * scale, grid.shape[0] * scale), interpolation=cv2.INTER_NEAREST)
    return grid


def viewing_scale(height: int) -> int:
    return max(1, 128 // height)


@torch.no_grad()
def write_training_preview(model, data, args: dict[str, Any], path: Path) -> None:
    """Sample the first few training conditions with DDIM and write a preview grid to ``path``."""
    from defectsynth.diffusion.losses import scheduler_prediction
    from defectsynth.diffusion.models import channel_layout
    from defectsynth.diffusion.sampling import decode, denoise, sample_generators
    from defectsynth.diffusion.schedules import make_sampler
    from defectsynth.diffusion.training import recipe_prediction

    was_training = model.training
    model.eval()
    index = torch.arange(min(PREVIEW_SAMPLES, len(data)))
    device = next(model.parameters()).device
    cond = data.conditions(index).to(device)
    layout = channel_layout(
        args["cond"], args["target"], data.num_classes, args["variance"], self_cond=args.get("self_cond", False), image_channels=data.image_channels,
    )
    prediction = recipe_prediction(args, layout)
    sampler = make_sampler(PREVIEW_SAMPLER, PREVIEW_STEPS, args["variance"], prediction=scheduler_prediction(prediction))
    x = denoise(model, layout, sampler, cond, sample_generators(args["seed"], index.tolist()), prediction=prediction)
    palette = class_palette(None)
    rows = []
    for i, xi in zip(index.tolist(), x):
        image, mask, _ = decode(xi, args["target"], data.num_classes, [], layout.image_channels)
        rows.append(preview_row(image, mask, data.boxes[i] if args["cond"] != "none" else [], palette))
    write_image(path, preview_grid(rows, viewing_scale(data.size[0])))
    model.train(was_training)
