"""Preview rendering: colours mean what the docs say, panels are laid out side by side."""

from __future__ import annotations

import numpy as np

from defectsynth.data.model import Box, ClassInfo
from defectsynth.encoding import basd_maps
from defectsynth.encoding.preview import basd_colors, class_colors, render_preview

CLASSES = [
    ClassInfo(0, "background", (0, 0, 0)),
    ClassInfo(1, "knot", (10, 200, 30)),
    ClassInfo(2, "crack", (200, 0, 200)),
]


def test_basd_colours_are_red_inside_blue_outside_white_near_edges():
    basd = np.array([[0.2, 0.01, -0.001, -0.5]], np.float32)
    rgb = basd_colors(basd).astype(int)
    assert rgb[0, 0, 0] > rgb[0, 0, 2] + 100  # deepest inside: red
    assert rgb[0, 3, 2] > rgb[0, 3, 0] + 100  # farthest outside: blue
    assert (rgb[0, 1:3] > 230).all()  # near the edges: almost white


def test_class_colours_follow_the_manifest():
    rgb = class_colors(np.array([[0, 1, 2]], np.uint8), CLASSES)
    assert rgb.tolist() == [[[0, 0, 0], [10, 200, 30], [200, 0, 200]]]


def test_preview_layout_and_panels():
    boxes = [Box(1, 2, 2, 10, 8), Box(2, 20, 20, 21, 21)]
    basd, cbasd = basd_maps(np.array([b.xyxy for b in boxes]), np.array([1, 2]), 32, 32)
    image = np.full((32, 32, 3), 128, np.uint8)
    preview = render_preview(image, basd, cbasd, boxes, CLASSES, "inside", title="a")
    assert preview.shape == (34 + 256 + 22, 3 * 256 + 2 * 6, 3)  # header, 8x enlarged panels, legend
    panel = preview[34 : 34 + 256]
    basd_panel, class_panel = panel[:, 256 + 6 : 512 + 6], panel[:, 512 + 12 :]
    assert class_panel[5 * 8 + 4, 6 * 8 + 4].tolist() == [10, 200, 30]  # inside the knot box
    assert class_panel[20 * 8 + 4, 20 * 8 + 4].tolist() == [200, 0, 200]  # the 1-pixel crack box keeps its colour
    assert class_panel[28 * 8, 4].tolist() == [0, 0, 0]  # background
    assert basd_panel[5 * 8 + 4, 6 * 8 + 4, 0] > basd_panel[5 * 8 + 4, 6 * 8 + 4, 2]  # red inside
