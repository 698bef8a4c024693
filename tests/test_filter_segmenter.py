"""``filter --by segmenter``: per-pair IoU / cross-entropy with a fixed tiny network, top-K, scores.json,
and the U-Net trained on real data (tiny smp network, 1 epoch) saved and reloaded."""

from __future__ import annotations

import json
from unittest import mock

import numpy as np
import pytest
import torch
from _metrics_data import write_dataset
from torch import nn

from defectsynth.data import Box, Dataset, Sample
from defectsynth.errors import DatasetError, OptionError
from defectsynth.evaluation.training import TrainConfig, build_model
from defectsynth.filtering import filter_dataset, keep_count, rank_scores, score_pairs
from defectsynth.formats.segmenter import load_model

LEVELS = np.array([0.0, 0.5, 1.0])


class RedLevelNet(nn.Module):
    """A fixed 'segmenter' for 3 classes: logit_c = -50 (red - level_c)^2 on the un-normalised red channel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        red = x[:, 0] * 0.229 + 0.485
        return -50.0 * (red[:, None] - torch.tensor(LEVELS, dtype=x.dtype).view(1, 3, 1, 1)) ** 2


def _pair(
    stem: str, red_square: tuple[slice, slice] | None, mask_square: tuple[slice, slice] | None, mask_class: int
) -> Sample:
    image = np.zeros((8, 8, 3), np.uint8)
    mask = np.zeros((8, 8), np.uint8)
    if red_square:
        image[red_square + (0,)] = 128  # red 128/255: the network predicts class 1 there
    if mask_square:
        mask[mask_square] = mask_class
    boxes = [Box(mask_class, 0, 0, 8, 8)] if mask_square else []
    return Sample(stem, image, mask, boxes)


SQUARE, LEFT_HALF, PIXEL = (slice(0, 4), slice(0, 4)), (slice(0, 4), slice(0, 2)), (slice(7, 8), slice(7, 8))
PAIRS = [
    _pair("perfect", SQUARE, SQUARE, 1),  # prediction = mask
    _pair("half", LEFT_HALF, SQUARE, 1),  # predicts 8 of the 16 class-1 pixels
    _pair("pixel", None, PIXEL, 2),  # one class-2 pixel missed
    _pair("wrong", None, SQUARE, 2),  # 16 class-2 pixels missed
]
# Per-image mean IoU over classes 0, 1, 2 (a class absent from both scores 1), by hand:
IOU = {
    "perfect": 1.0,
    "half": (48 / 56 + 8 / 16 + 1) / 3,
    "pixel": (63 / 64 + 1 + 0) / 3,
    "wrong": (48 / 64 + 1 + 0) / 3,
}


def _ce_by_hand(red: float, target: int) -> float:
    logits = -50.0 * (red - LEVELS) ** 2
    return float(np.log(np.exp(logits).sum()) - logits[target])


R = 128 / 255
CE = {  # mean over the 64 pixels: the right ones cost little, each miss costs its logit gap
    "perfect": (16 * _ce_by_hand(R, 1) + 48 * _ce_by_hand(0, 0)) / 64,
    "half": (8 * _ce_by_hand(R, 1) + 8 * _ce_by_hand(0, 1) + 48 * _ce_by_hand(0, 0)) / 64,
    "pixel": (_ce_by_hand(0, 2) + 63 * _ce_by_hand(0, 0)) / 64,
    "wrong": (16 * _ce_by_hand(0, 2) + 48 * _ce_by_hand(0, 0)) / 64,
}


def _arrays(pairs=PAIRS):
    return np.stack([p.image for p in pairs]), np.stack([p.mask for p in pairs])


def test_iou_and_ce_scores_by_hand():
    images, masks = _arrays()
    iou = score_pairs(RedLevelNet(), images, masks, "iou", batch_size=3)
    ce = score_pairs(RedLevelNet(), images, masks, "ce", batch_size=3)
    assert iou == pytest.approx([IOU[p.stem] for p in PAIRS], abs=1e-9)
    assert ce == pytest.approx([CE[p.stem] for p in PAIRS], rel=1e-4, abs=1e-6)
    # the two scores disagree on "half" and "pixel": IoU punishes the half-missed square more
    assert rank_scores(dict(zip([p.stem for p in PAIRS], iou)), "iou") == ["perfect", "half", "pixel", "wrong"]
    assert rank_scores(dict(zip([p.stem for p in PAIRS], ce)), "ce") == ["perfect", "pixel", "half", "wrong"]


def test_masks_without_valid_pixels_rank_last():
    images, masks = _arrays(PAIRS[:2])
    masks[0] = 255
    assert score_pairs(RedLevelNet(), images, masks, "iou")[0] is None
    assert score_pairs(RedLevelNet(), images, masks, "ce")[0] is None
    assert rank_scores({"a": None, "b": 0.2, "c": 0.9, "d": 0.2}, "iou") == ["c", "b", "d", "a"]
    assert rank_scores({"a": None, "b": 0.2, "c": 0.9, "d": 0.2}, "ce") == ["b", "d", "c", "a"]


def test_keep_count():
    assert keep_count(10, 3, None) == 3 and keep_count(10, 30, None) == 10
    assert keep_count(10, None, 0.35) == 3 and keep_count(10, None, 0.3) == 3 and keep_count(3, None, 0.1) == 1
    for args, message in (
        ((10, None, None), "exactly one of"),
        ((10, 2, 0.5), "exactly one of"),
        ((10, 0, None), "--top-k"),
        ((10, None, 1.5), "--keep-fraction"),
    ):
        with pytest.raises(OptionError, match=message):
            keep_count(*args)


def test_classes_beyond_the_network_are_refused():
    images, masks = _arrays(PAIRS[:1])
    masks[0, 0, 0] = 4
    with pytest.raises(DatasetError, match="predicts 3 classes, but the masks hold class 4"):
        score_pairs(RedLevelNet(), images, masks)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    out = tmp_path_factory.mktemp("segfilter") / "syn"
    return write_dataset(
        out, PAIRS, synthetic=True, classes=["a", "b"], source={"condition_of": {p.stem: "r" for p in PAIRS}}
    )


@pytest.mark.parametrize(("score", "keep"), [("iou", ["perfect", "half"]), ("ce", ["perfect", "pixel"])])
def test_top_k_writes_the_best_pairs_and_their_scores(synthetic, tmp_path, score, keep):
    with mock.patch("defectsynth.filtering.load_model", return_value=RedLevelNet()):
        summary = filter_dataset(
            synthetic, tmp_path / "out", "segmenter", segmenter=tmp_path / "net", score=score, top_k=2, device="cpu"
        )
    assert summary.kept == sorted(keep) and Dataset(tmp_path / "out").stems == sorted(keep)
    data = json.loads((tmp_path / "out" / "scores.json").read_text())
    expected = IOU if score == "iou" else CE
    assert data["score"] == score and data["keep"] == 2 and data["higher_is_better"] == (score == "iou")
    for stem, entry in data["samples"].items():
        assert entry["score"] == pytest.approx(expected[stem], rel=1e-4, abs=1e-6) and entry["kept"] == (stem in keep)
    assert sorted(entry["rank"] for entry in data["samples"].values()) == [1, 2, 3, 4]
    record = Dataset(tmp_path / "out").manifest.source["filters"][-1]
    assert (
        record["by"] == "segmenter"
        and record["kept"] == 2
        and set(record["removed"]) == {p.stem for p in PAIRS} - set(keep)
    )
    assert (
        record["options"]["model"] == str((tmp_path / "net").resolve())
        and not (tmp_path / "out" / "segmenter").exists()
    )
    # keep_fraction 0.5 of 4 pairs is the same K
    with mock.patch("defectsynth.filtering.load_model", return_value=RedLevelNet()):
        half = filter_dataset(
            synthetic, tmp_path / "half", "segmenter", segmenter=tmp_path / "net", score=score, keep_fraction=0.5
        )
    assert half.kept == summary.kept


def test_segmenter_option_errors(synthetic, tmp_path):
    cases = [
        (dict(top_k=2), "exactly one of --real DIR"),
        (dict(real=synthetic, segmenter=tmp_path, top_k=2), "exactly one of --real DIR"),
        (dict(real=synthetic, top_k=2, clip_labels=True), "belong to --by boxes"),
        (dict(real=synthetic, top_k=2, score="dice"), "--score"),
        (dict(real=synthetic, top_k=2, batch_size=0), "--batch-size"),
    ]
    for kwargs, message in cases:
        with pytest.raises(OptionError, match=message):
            filter_dataset(synthetic, tmp_path / "out", "segmenter", **kwargs)
    with pytest.raises(OptionError, match="--by: choose one of boxes, segmenter"):
        filter_dataset(synthetic, tmp_path / "out", "clip")
    with pytest.raises(DatasetError, match="model.safetensors not found"):
        load_model(tmp_path)


@pytest.mark.slow
def test_trained_unet_is_saved_and_reloads_to_the_same_scores(toy_dataset, tmp_path):
    torch.set_num_threads(1)
    common = dict(score="iou", top_k=5, size="32", batch_size=8, device="cpu")
    summary = filter_dataset(
        toy_dataset,
        tmp_path / "out",
        "segmenter",
        real=toy_dataset,
        split="train",
        encoder="resnet18",
        encoder_weights=None,
        epochs=1,
        **common,
    )
    assert len(summary.kept) == 5 and len(summary.removed) == len(Dataset(toy_dataset).stems) - 5
    saved = tmp_path / "out" / "segmenter"
    assert (saved / "config.json").is_file() and (saved / "model.safetensors").is_file()
    options = Dataset(tmp_path / "out").manifest.source["filters"][-1]["options"]
    assert options["encoder"] == "resnet18" and options["epochs"] == 1 and options["split"] == "train"
    # trained as evaluate trains a cell: the best epoch on a held-out part of the split
    assert options["val_fraction"] == 0.2 and options["best_epoch"] == 0 and 0 <= options["best_val_miou"] <= 1
    again = filter_dataset(toy_dataset, tmp_path / "again", "segmenter", segmenter=saved, **common)
    assert again.kept == summary.kept
    assert again.scores == pytest.approx(summary.scores)


def test_a_size_the_encoder_cannot_take_is_a_one_line_option_error():
    net = build_model("fpn", 3, TrainConfig("resnet18", None))  # the U-Net of smp 0.6 takes any size, FPN does not
    images, masks = np.zeros((2, 40, 40, 3), np.uint8), np.zeros((2, 40, 40), np.uint8)
    with pytest.raises(OptionError, match="--size: 40x40 does not suit the segmenter") as err:
        score_pairs(net, images, masks)
    assert "\n" not in str(err.value)
