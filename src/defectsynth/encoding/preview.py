"""Preview images of box conditions, for humans: the image, the BASD map and the C-BASD class map
side by side, with the boxes outlined and a legend of the classes.

- image: the RGB image with each box outlined in its class colour.
- BASD: a diverging colour map, red inside boxes (darker = deeper inside), blue outside (darker =
  farther away), white at the box edges; each sign is scaled to its own extreme, printed in the
  header, because inside values are much smaller than outside ones. Boxes outlined in black.
- C-BASD: class colours from ``dataset.json`` (background black), boxes outlined in white; with
  ``class_fill="nearest"`` the pixels outside every box are dimmed.

Small images are enlarged (nearest neighbour) so that every panel is 256 pixels tall; large ones
are reduced to at most 512 pixels tall, and every panel to at most 1024 pixels wide.
"""

from __future__ import annotations

import cv2
import numpy as np

from defectsynth.data.model import Box, ClassInfo, default_color

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_HEADER = 34  # pixels above each panel for the title and the value range
_GAP = 6
_WHITE, _BLACK = (255, 255, 255), (0, 0, 0)
_RED, _BLUE = np.array([178, 24, 43], np.float32), np.array([33, 102, 172], np.float32)


def basd_colors(basd: np.ndarray) -> np.ndarray:
    """(H, W) BASD values -> (H, W, 3) uint8 RGB: white -> red inside, white -> blue outside."""
    inside, outside = np.clip(basd, 0, None), np.clip(-basd, 0, None)
    t_in = inside / inside.max() if inside.max() > 0 else inside
    t_out = outside / outside.max() if outside.max() > 0 else outside
    t = np.where(basd > 0, t_in, t_out)[..., None]
    end = np.where((basd > 0)[..., None], _RED, _BLUE)
    return (255 * (1 - t) + end * t).round().astype(np.uint8)


def class_colors(class_map: np.ndarray, classes: list[ClassInfo]) -> np.ndarray:
    """(H, W) class ids -> (H, W, 3) uint8 RGB in the dataset's class colours (background black)."""
    palette = np.array([default_color(i) for i in range(256)], np.uint8)
    for cls in classes:
        palette[cls.id] = cls.color
    palette[0] = _BLACK
    return palette[class_map]


def _scale(height: int, width: int) -> float:
    """Enlarge to 256 pixels tall, or reduce to at most 512 tall; panels at most 1024 wide."""
    scale = 256 / height if height < 256 else min(1.0, 512 / height)
    return min(scale, 1024 / width)


def _panel(rgb: np.ndarray, scale: float, boxes: list[Box], outline, title: str, note: str, smooth: bool) -> np.ndarray:
    height, width = rgb.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    big = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if smooth and scale < 1 else cv2.INTER_NEAREST)
    for box in boxes:
        color = outline(box)
        # drawn on the pixels just outside the box (2 deep when enlarged), so that even a 1-pixel
        # box keeps its colour
        for offset in range(1, 3 if scale >= 3 else 2):
            top_left = (round(box.x_min * scale) - offset, round(box.y_min * scale) - offset)
            bottom_right = (round(box.x_max * scale) + offset - 1, round(box.y_max * scale) + offset - 1)
            cv2.rectangle(big, top_left, bottom_right, color, 1)
    header = np.full((_HEADER, big.shape[1], 3), 255, np.uint8)
    cv2.putText(header, title, (4, 14), _FONT, 0.45, _BLACK, 1, cv2.LINE_AA)
    cv2.putText(header, note, (4, 29), _FONT, 0.36, (90, 90, 90), 1, cv2.LINE_AA)
    return np.concatenate([header, big])


def _legend(classes: list[ClassInfo], width: int) -> np.ndarray:
    strip = np.full((22, width, 3), 255, np.uint8)
    x = 4
    for cls in classes:
        if cls.id == 0:
            continue
        cv2.rectangle(strip, (x, 5), (x + 12, 17), tuple(int(v) for v in cls.color), -1)
        cv2.rectangle(strip, (x, 5), (x + 12, 17), (120, 120, 120), 1)
        label = f"{cls.id} {cls.name}"
        cv2.putText(strip, label, (x + 16, 16), _FONT, 0.4, _BLACK, 1, cv2.LINE_AA)
        x += 24 + cv2.getTextSize(label, _FONT, 0.4, 1)[0][0]
    return strip


def render_preview(
    image: np.ndarray,
    basd: np.ndarray,
    cbasd: np.ndarray,
    boxes: list[Box],
    classes: list[ClassInfo],
    class_fill: str,
    title: str = "",
) -> np.ndarray:
    """The preview of one image: (H', W', 3) uint8 RGB with three panels and a class legend.

    image: (H, W, 3) uint8 RGB. basd: (H, W) float32. cbasd: (H, W) uint8. boxes: the boxes encoded.
    """
    scale = _scale(*image.shape[:2])
    colors = {c.id: tuple(int(v) for v in c.color) for c in classes}
    inside = basd[basd > 0].max() if (basd > 0).any() else 0.0
    outside = basd[basd < 0].min() if (basd < 0).any() else 0.0
    class_map = class_colors(cbasd, classes)
    note = "class of the box that wins"
    if class_fill == "nearest":
        class_map[basd < 0] //= 2
        note = "outside boxes (dimmed): nearest box"
    panels = [
        _panel(
            image,
            scale,
            boxes,
            lambda b: colors.get(b.cls, default_color(b.cls)),
            title or "image",
            f"{len(boxes)} boxes",
            True,
        ),
        _panel(
            basd_colors(basd),
            scale,
            boxes,
            lambda b: _BLACK,
            "BASD",
            f"red in: max {inside:+.3f}  blue out: min {outside:+.3f}",
            False,
        ),
        _panel(class_map, scale, boxes, lambda b: _WHITE, f"C-BASD ({class_fill})", note, False),
    ]
    gap = np.full((panels[0].shape[0], _GAP, 3), 255, np.uint8)
    row = np.concatenate([panels[0], gap, panels[1], gap, panels[2]], axis=1)
    return np.concatenate([row, _legend(classes, row.shape[1])])
