"""Preview grids: one row per sample, columns image | mask overlaid in class colours | boxes drawn.

Written during training (``previews/epoch-<e>.png``, a few DDIM steps from the EMA weights) and by
the demo.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from defectsynth.data.colors import class_palette
from defectsynth.data.files import write_image
from defectsynth.data.model import Box
from defectsynth.diffusion.configs import DiffusionTrainConfig

PREVIEW_SAMPLES = 4
PREVIEW_STEPS = 25
PREVIEW_SAMPLER = "ddim"


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
def write_training_preview(model, data, args: DiffusionTrainConfig, path: Path) -> np.ndarray:
    """Sample the first few training conditions with DDIM and write a preview grid to ``path``;
    returns the grid ((H, W, 3) uint8 RGB)."""
    from defectsynth.diffusion.denoising import decode, denoise, sample_generators
    from defectsynth.diffusion.losses import recipe_prediction, scheduler_prediction
    from defectsynth.diffusion.models import channel_layout
    from defectsynth.diffusion.schedules import make_sampler

    was_training = model.training
    model.eval()
    index = torch.arange(min(PREVIEW_SAMPLES, len(data)))
    device = next(model.parameters()).device
    cond = data.conditions(index).to(device)
    layout = channel_layout(
        args.cond,
        args.target,
        data.num_classes,
        args.variance,
        self_cond=args.self_cond,
        image_channels=data.image_channels,
    )
    prediction = recipe_prediction(args.to_json(), layout)
    sampler = make_sampler(PREVIEW_SAMPLER, PREVIEW_STEPS, args.variance, prediction=scheduler_prediction(prediction))
    x = denoise(model, layout, sampler, cond, sample_generators(args.seed, index.tolist()), prediction=prediction)
    palette = class_palette(None)
    rows = []
    for i, xi in zip(index.tolist(), x):
        image, mask, _ = decode(xi, args.target, data.num_classes, [], layout.image_channels)
        rows.append(preview_row(image, mask, data.boxes[i] if args.cond != "none" else [], palette))
    grid = preview_grid(rows, viewing_scale(data.size[0]))
    write_image(path, grid)
    model.train(was_training)
    return grid


CONTACT_SHEET = Path("previews") / "contact-sheet.png"
CONTACT_SHEET_SAMPLES = 16
CONTACT_SHEET_COLUMNS = 2


def contact_sheet(rows: list[np.ndarray], columns: int = CONTACT_SHEET_COLUMNS, scale: int = 1) -> np.ndarray:
    """Preview rows (:func:`preview_row`, one shape) in ``columns`` side by side columns, read down
    then across, with a 2-pixel white gap; empty places stay white."""
    per_column = -(-len(rows) // columns)
    blank = np.full_like(rows[0], 255)
    stacks = [
        preview_grid((rows[i : i + per_column] + [blank] * per_column)[:per_column], scale)
        for i in range(0, len(rows), per_column)
    ]
    gap = np.full((stacks[0].shape[0], 2 * scale, 3), 255, np.uint8)
    return np.concatenate([p for s in stacks for p in (s, gap)][:-1], axis=1)


def write_contact_sheet(dataset: Path, count: int = CONTACT_SHEET_SAMPLES) -> Path:
    """``<dataset>/previews/contact-sheet.png``: image | mask overlay | boxes for its first ``count``
    samples (in stem order), for a look at a sampled dataset at once."""
    from defectsynth.data import Dataset

    ds = Dataset(dataset)
    samples = [ds.read(stem) for stem in ds.stems[:count]]
    palette = class_palette(ds.manifest.classes)
    rows = [preview_row(s.image, s.mask, s.boxes, palette) for s in samples]
    path = Path(dataset) / CONTACT_SHEET
    write_image(path, contact_sheet(rows, min(CONTACT_SHEET_COLUMNS, len(rows)), viewing_scale(samples[0].size[0])))
    return path
