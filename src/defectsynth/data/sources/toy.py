"""The built-in toy dataset: procedural industrial surfaces with exact defect masks and boxes.

No files are needed, so the demo and the tests run anywhere. Each image shows one of four
surfaces (brushed metal, wood grain, fruit skin, woven fabric) with 0-4 defects of four classes
whose class is visible from shape and colour:

- ``scratch``: long, thin, bright, slightly curved lines;
- ``spot``: small round dark holes with a darker rim;
- ``crack``: dark, thin, branching random walks;
- ``stain``: irregular blue-green translucent blobs.

Sample ``i`` is drawn from a generator seeded by ``(seed, i)``: the same seed gives the same bytes,
whatever ``num`` is. Defects drawn later cover earlier ones; every box is the exact bounding box of
the visible pixels of its defect in the mask, and a fully covered defect has no box.
"""

from __future__ import annotations

import cv2
import numpy as np

from defectsynth.checks import check_at_least
from defectsynth.data.model import Box, Manifest, Sample, make_classes
from defectsynth.data.sources import SourceData
from defectsynth.errors import OptionError

TOY_CLASSES = ("scratch", "spot", "crack", "stain")
TOY_COLORS = {"scratch": (255, 225, 25), "spot": (230, 25, 75), "crack": (0, 130, 200), "stain": (60, 180, 75)}
SURFACES = ("metal", "wood", "fruit", "fabric")
DEFECT_FREE_SHARE = 0.15
DEFAULT_TOY_SIZE = (64, 64)


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Value noise in [-1, 1] with about ``cells`` features across the image."""
    small = rng.uniform(-1, 1, size=(max(2, cells * h // max(h, w)), max(2, cells * w // max(h, w)))).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _surface(rng: np.random.Generator, kind: str, h: int, w: int) -> np.ndarray:
    """An (H, W, 3) float32 texture in 0..255."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    s = float(max(h, w))
    if kind == "metal":
        streaks = cv2.blur(rng.normal(0, 1, (h, w)).astype(np.float32), (max(3, w // 3), 1)) * 25
        base = rng.uniform(120, 170) + streaks + _smooth_noise(rng, h, w, 3) * 10
        tint = np.array([1.0, 1.0, 1.03], dtype=np.float32)
    elif kind == "wood":
        warp = _smooth_noise(rng, h, w, 4) * s * 0.05
        rings = np.sin((yy + warp) * (2 * np.pi / rng.uniform(0.08, 0.18) / s) + rng.uniform(0, 6.3))
        base = rng.uniform(140, 175) + rings * 18 + _smooth_noise(rng, h, w, 8) * 6
        tint = np.array([1.0, 0.72, 0.45], dtype=np.float32)
    elif kind == "fruit":
        pores = (rng.random((h, w)) < 0.04).astype(np.float32) * -18
        base = rng.uniform(170, 205) + _smooth_noise(rng, h, w, 3) * 14 + pores
        tint = np.array([1.0, 0.85, 0.25], dtype=np.float32)
    else:  # fabric
        period = s / rng.uniform(6, 12)
        weave = np.sin(xx * 2 * np.pi / period) * np.sin(yy * 2 * np.pi / period)
        base = rng.uniform(110, 150) + weave * 12 + _smooth_noise(rng, h, w, 5) * 8
        tint = np.array([0.75, 0.8, 1.0], dtype=np.float32)
    light = 1.0 + _smooth_noise(rng, h, w, 2) * 0.08
    return np.clip(base[:, :, None] * tint * light[:, :, None] + rng.normal(0, 2.5, (h, w, 1)), 0, 255)


def _polyline(
    rng: np.random.Generator, start: np.ndarray, steps: int, step_len: float, angle: float, wiggle: float
) -> np.ndarray:
    points = [start]
    for _ in range(steps):
        angle += rng.normal(0, wiggle)
        points.append(points[-1] + step_len * np.array([np.cos(angle), np.sin(angle)]))
    return np.round(np.array(points)).astype(np.int32)


def _footprint(rng: np.random.Generator, cls: str, h: int, w: int) -> np.ndarray:
    """A boolean (H, W) footprint of one defect of class ``cls``."""
    s = min(h, w)
    canvas = np.zeros((h, w), dtype=np.uint8)
    centre = rng.uniform([0.1 * w, 0.1 * h], [0.9 * w, 0.9 * h])
    thin = max(1, round(s / 48))
    if cls == "scratch":
        length = rng.uniform(0.35, 0.7) * s
        line = _polyline(rng, centre, 4, length / 4, rng.uniform(0, np.pi), 0.08)
        cv2.polylines(canvas, [line], False, 1, thickness=thin)
    elif cls == "spot":
        radius = max(2, round(rng.uniform(0.04, 0.09) * s))
        cv2.circle(canvas, tuple(int(v) for v in centre), radius, 1, thickness=-1)
    elif cls == "crack":
        trunk = _polyline(rng, centre, 8, s / 14, rng.uniform(0, 2 * np.pi), 0.5)
        cv2.polylines(canvas, [trunk], False, 1, thickness=thin)
        for _ in range(rng.integers(1, 3)):
            root = trunk[rng.integers(2, len(trunk))].astype(float)
            branch = _polyline(rng, root, 4, s / 16, rng.uniform(0, 2 * np.pi), 0.6)
            cv2.polylines(canvas, [branch], False, 1, thickness=thin)
    else:  # stain
        for _ in range(rng.integers(3, 6)):
            c = centre + rng.normal(0, 0.05 * s, 2)
            axes = tuple(max(2, round(v)) for v in rng.uniform(0.04, 0.11, 2) * s)
            cv2.ellipse(canvas, tuple(int(v) for v in c), axes, rng.uniform(0, 180), 0, 360, 1, thickness=-1)
    return canvas.astype(bool)


def _paint(rng: np.random.Generator, image: np.ndarray, cls: str, where: np.ndarray) -> None:
    """Paint a defect of class ``cls`` onto the float image at the boolean footprint ``where``."""
    if cls == "scratch":
        image[where] = np.clip(image[where] * 0.4 + rng.uniform(200, 240), 0, 255)
    elif cls == "spot":
        rim = where & ~cv2.erode(where.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        image[where] = rng.uniform(35, 60)
        image[rim] = rng.uniform(10, 25)
    elif cls == "crack":
        image[where] = rng.uniform(10, 35) + image[where] * 0.1
    else:
        stain = np.array([40, 140, 150], dtype=np.float32) * rng.uniform(0.8, 1.1)
        image[where] = image[where] * 0.35 + stain * 0.65


def toy_sample(index: int, seed: int, size: tuple[int, int], classes: tuple[str, ...]) -> Sample:
    """The toy sample ``index`` (stem ``toy-<index>``), seeded by ``(seed, index)``."""
    h, w = size
    rng = np.random.default_rng([seed, index])
    image = _surface(rng, SURFACES[rng.integers(len(SURFACES))], h, w)
    instances = np.zeros((h, w), dtype=np.int32)
    kinds: list[int] = []
    count = 0 if rng.random() < DEFECT_FREE_SHARE else int(rng.integers(1, 5))
    for k in range(1, count + 1):
        cls_index = int(rng.integers(len(classes)))
        where = _footprint(rng, classes[cls_index], h, w)
        _paint(rng, image, classes[cls_index], where)
        instances[where] = k
        kinds.append(cls_index + 1)
    mask = np.zeros((h, w), dtype=np.uint8)
    boxes = []
    for k, cls_id in enumerate(kinds, 1):
        ys, xs = np.nonzero(instances == k)
        if len(ys) == 0:
            continue
        mask[ys, xs] = cls_id
        boxes.append(Box(cls_id, int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1))
    return Sample(f"toy-{index:05d}", np.round(image).astype(np.uint8), mask, boxes)


def parse_toy_classes(classes: str | None) -> tuple[str, ...]:
    """``"scratch,spot"`` -> the chosen toy classes, in the built-in order."""
    if not classes:
        return TOY_CLASSES
    chosen = [c.strip() for c in classes.split(",") if c.strip()]
    unknown = [c for c in chosen if c not in TOY_CLASSES]
    if unknown or not chosen:
        raise OptionError(f"--classes: toy classes are {', '.join(TOY_CLASSES)}; got {classes!r}")
    return tuple(c for c in TOY_CLASSES if c in chosen)


def import_toy(
    num: int = 200, size: tuple[int, int] | None = None, classes: str | None = None, seed: int = 0
) -> SourceData:
    """A toy dataset of ``num`` images of ``size`` = (H, W) (default 64x64), rendered directly at that size."""
    size = size or DEFAULT_TOY_SIZE
    check_at_least("--num", num)
    if min(size) < 16:
        raise OptionError(f"--size: toy images need at least 16 pixels a side, got {size[1]}x{size[0]}")
    names = parse_toy_classes(classes)
    manifest = Manifest(
        name="toy",
        classes=make_classes(list(names), TOY_COLORS),
        source={"importer": "toy", "num": num, "size": [size[0], size[1]], "classes": list(names), "seed": seed},
    )
    samples = (toy_sample(i, seed, size, names) for i in range(num))
    return SourceData(manifest, samples, total=num, resized=True, default_size=size)
