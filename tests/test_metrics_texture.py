"""The texture metric: hand-computed Laplacian variances and spectra, histogram distances, box crops, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _metrics_data import write_dataset

from defectsynth.cli import app
from defectsynth.data import Box, Sample
from defectsynth.errors import OptionError
from defectsynth.metrics import compute_metrics
from defectsynth.metrics.texture import TextureSums, high_frequency_share, histogram_distances, laplacian_variance


def checkerboard(size: int, low: int = 0, high: int = 255) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return np.where((yy + xx) % 2 == 0, low, high).astype(np.uint8)


def rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[..., None], 3, axis=2)


def test_flat_image_has_no_high_frequency_energy():
    flat = np.full((16, 16), 117, np.uint8)
    assert laplacian_variance(flat) == 0.0
    assert high_frequency_share(flat) == 0.0


def test_checkerboard_and_stripes_by_hand():
    # every pixel of a 0/255 checkerboard has 4 neighbours of the other colour (also across the
    # reflected border): Laplacian = 4 * (+-255) = +-1020, mean 0, variance 1020^2
    assert laplacian_variance(checkerboard(8)) == pytest.approx(1020.0**2)
    # vertical 0/255 stripes: 2 neighbours of the other colour: +-510
    stripes = np.tile(np.array([0, 255], np.uint8), (8, 4))
    assert laplacian_variance(stripes) == pytest.approx(510.0**2)
    # all the checkerboard's power sits at (0.5, 0.5), radius 0.707 > 0.25; stripes at fx = 0.5
    assert high_frequency_share(checkerboard(8)) == pytest.approx(1.0)
    assert high_frequency_share(stripes, cutoff=0.49) == pytest.approx(1.0)


def test_spectrum_share_splits_at_the_cutoff():
    x = np.arange(32)
    low = 128 + 60 * np.cos(2 * np.pi * x / 16)  # 1/16 cycles/pixel
    high = 40 * np.cos(2 * np.pi * x * 3 / 8)  # 3/8 cycles/pixel: power shares 40^2 : 60^2
    image = np.tile(low + high, (32, 1))
    share = high_frequency_share(image.astype(np.float64), cutoff=0.25)
    assert share == pytest.approx(40.0**2 / (40.0**2 + 60.0**2))
    assert high_frequency_share(np.tile(low, (32, 1)), cutoff=0.25) == pytest.approx(0.0, abs=1e-12)


def test_histogram_distances_by_hand():
    p = np.zeros(256, np.int64)
    p[[10, 20, 30]] = [1, 2, 1]
    for k in (1, 5, 40):
        assert histogram_distances(p, np.roll(p, k))["wasserstein"] == pytest.approx(k)
    assert histogram_distances(p, p) == {"hist_l1": 0.0, "wasserstein": 0.0}
    q = np.zeros(256, np.int64)
    q[200] = 7
    assert histogram_distances(p, q)["hist_l1"] == pytest.approx(2.0)


def test_channel_moments_pool_all_pixels():
    sums = TextureSums()
    sums.add(np.full((2, 2, 3), (10, 20, 30), np.uint8))
    sums.add(np.full((2, 2, 3), (30, 20, 30), np.uint8))
    stats = sums.stats()
    assert stats["mean"] == {"R": 20.0, "G": 20.0, "B": 30.0}
    assert stats["std"] == pytest.approx({"R": 10.0, "G": 0.0, "B": 0.0})
    assert stats["images"] == 2 and stats["laplacian_var"] == 0.0


def _board_in_box(stem: str, level: int, tiny: bool = False) -> Sample:
    """A flat 16x16 grey image with a checkerboard in the box [4:12, 4:12]; optionally a 3-pixel-wide box."""
    image = np.full((16, 16), level, np.uint8)
    image[4:12, 4:12] = checkerboard(8, level - 50, level + 50)
    mask = np.zeros((16, 16), np.uint8)
    mask[4:12, 4:12] = 1
    boxes = [Box(1, 4, 4, 12, 12)]
    if tiny:
        mask[0:3, 13:16] = 1
        boxes.append(Box(1, 13, 0, 16, 3))
    return Sample(stem, rgb(image), mask, boxes)


def test_identical_sets_give_ratio_one_and_distance_zero(tmp_path):
    real = write_dataset(
        tmp_path / "real", [_board_in_box("a", 100, tiny=True), _board_in_box("b", 120)], classes=["crack"]
    )
    result = compute_metrics(["texture"], synthetic=real, real=real)["texture"]
    for region in ("image", "boxes"):
        block = result[region]
        assert block["ratio"]["laplacian_var"] == pytest.approx(1.0) and block["ratio"]["hf_share"] == pytest.approx(
            1.0
        )
        assert block["ratio"]["mean"] == pytest.approx({"R": 1.0, "G": 1.0, "B": 1.0})
        assert block["distance"] == {"hist_l1": 0.0, "wasserstein": 0.0}
    boxes = result["boxes"]["real"]
    # the crop is exactly a checkerboard of amplitude +-50: Laplacian +-400 everywhere
    assert boxes["images"] == 2 and boxes["skipped"] == 1 and boxes["laplacian_var"] == pytest.approx(400.0**2)
    assert boxes["hf_share"] == pytest.approx(1.0)
    assert result["image"]["real"]["laplacian_var"] < boxes["laplacian_var"]


def test_grey_shift_is_the_wasserstein_distance(tmp_path):
    real = write_dataset(tmp_path / "real", [_board_in_box("a", 100)], classes=["crack"])
    shifted = write_dataset(tmp_path / "syn", [_board_in_box("a", 107)], classes=["crack"], synthetic=True)
    result = compute_metrics(["texture"], synthetic=shifted, real=real)["texture"]
    for region in ("image", "boxes"):
        assert result[region]["distance"]["wasserstein"] == pytest.approx(7.0)
        assert result[region]["ratio"]["laplacian_var"] == pytest.approx(1.0)  # the same texture, only brighter
        assert result[region]["ratio"]["mean"]["G"] == pytest.approx(
            result[region]["synthetic"]["mean"]["G"] / result[region]["real"]["mean"]["G"]
        )
    assert result["image"]["synthetic"]["mean"]["R"] == pytest.approx(107.0)


def test_bad_cutoff_is_refused(toy_dataset):
    with pytest.raises(OptionError, match="--hf-cutoff"):
        compute_metrics(["texture"], synthetic=toy_dataset, real=toy_dataset, hf_cutoff=0.5)


def test_cli_prints_the_table_and_writes_json(tmp_path, runner, toy_dataset):
    out = tmp_path / "t.json"
    res = runner.invoke(
        app,
        [
            "metrics",
            "texture",
            "--real",
            str(toy_dataset),
            "--split",
            "train",
            "--synthetic",
            str(toy_dataset),
            "--hf-cutoff",
            "0.3",
            "--json",
            str(out),
            "--no-progress",
        ],
        env={"COLUMNS": "200"},
    )
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())["texture"]
    assert data["hf_cutoff"] == 0.3 and data["image"]["real"]["images"] < data["image"]["synthetic"]["images"]
    assert "Laplacian variance" in res.output and "grey Wasserstein" in res.output
    res = runner.invoke(app, ["metrics", "texture", "--synthetic", str(toy_dataset), "--no-progress"])
    assert res.exit_code == 2 and "texture needs both --real and --synthetic" in res.output
