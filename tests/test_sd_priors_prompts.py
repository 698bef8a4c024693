"""Visual Prior Blending (eq. 4), the mask prior, Class-Prompt Appending, captions and plans, checked
exactly on small hand-made inputs; the line-art detector on random safetensors weights."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from defectsynth.errors import DatasetError, MissingDependencyError, OptionError
from defectsynth.formats.dataset import parse_dataset_spec
from defectsynth.metrics.weights import save_weights
from defectsynth.sd_backend.detectors import (
    LINEART_FILE,
    SKETCH_FILE,
    LineartGenerator,
    PiDiNet,
    PixelDifferenceConv,
    load_lineart,
    load_sketch,
    run_lineart,
)  # fmt: skip
from defectsynth.sd_backend.generate import generation_size, make_jobs, plan_of
from defectsynth.sd_backend.priors import (
    PriorDetector,
    blend_priors,
    canny_prior,
    mask_prior,
    parse_blend,
    to_condition_image,
)
from defectsynth.sd_backend.prompts import (
    build_prompt,
    check_template,
    class_prompt,
    classes_in_mask,
    missing_captions,
    read_captions,
)


def test_mask_prior_marks_both_sides_of_every_class_boundary():
    mask = np.zeros((6, 7), np.uint8)
    mask[1:4, 1:3] = 1
    mask[1:4, 3:5] = 2  # touches class 1
    mask[5, 6] = 255  # ignore counts as background: no edge
    expected = np.array(
        [
            [1, 1, 1, 1, 1, 1, 0],
            [1, 1, 1, 1, 1, 1, 0],
            [1, 1, 1, 1, 1, 1, 0],
            [1, 1, 1, 1, 1, 1, 0],
            [1, 1, 1, 1, 1, 1, 0],
            [0, 0, 0, 0, 0, 0, 0],
        ],
        np.float32,
    )
    assert mask_prior(mask).dtype == np.float32
    np.testing.assert_array_equal(mask_prior(mask), expected)
    wide = np.zeros((5, 9), np.uint8)
    wide[:, 4:] = 3
    np.testing.assert_array_equal(mask_prior(wide), np.tile([0, 0, 0, 1, 1, 0, 0, 0, 0], (5, 1)).astype(np.float32))


def test_blend_is_equation_4_clipped_to_one():
    image_prior = np.array([[0.0, 1.0, 0.5], [1.0, 0.2, 0.0]], np.float32)
    edges = np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]], np.float32)
    np.testing.assert_allclose(
        blend_priors(image_prior, edges, (0.7, 0.9)), [[0.9, 1.0, 0.35], [0.7, 0.14, 0.0]], rtol=1e-6
    )
    np.testing.assert_allclose(blend_priors(image_prior, edges, (1.0, 0.0)), image_prior)
    cond = to_condition_image(np.array([[0.0, 0.5, 1.0]], np.float32))
    assert cond.shape == (1, 3, 3) and cond.dtype == np.uint8
    np.testing.assert_array_equal(cond[0, :, 0], [0, 128, 255])


def test_canny_prior_is_opencv_canny_100_200():
    rng = np.random.default_rng(0)
    image = np.zeros((24, 24, 3), np.uint8)
    image[6:18, 6:18] = 200
    image = np.clip(image + rng.integers(0, 10, image.shape), 0, 255).astype(np.uint8)
    prior = canny_prior(image)
    np.testing.assert_array_equal(prior, (cv2.Canny(image, 100, 200) > 0).astype(np.float32))
    assert prior[6, 6:18].sum() > 0 and prior[0:3, 0:3].sum() == 0
    assert np.array_equal(PriorDetector("canny")(image), prior)


@pytest.mark.parametrize("text, expected", [("0.7,0.9", (0.7, 0.9)), (" 1 , 0 ", (1.0, 0.0)), ((0.5, 2.0), (0.5, 2.0))])
def test_parse_blend(text, expected):
    assert parse_blend(text) == expected


@pytest.mark.parametrize("text", ["0.7", "0.7,0.9,1", "a,b", "-1,0.5", "nan,1"])
def test_parse_blend_refuses_bad_values(text):
    with pytest.raises(OptionError, match="--blend"):
        parse_blend(text)


def test_unknown_prior_is_refused():
    with pytest.raises(OptionError, match="unknown prior"):
        PriorDetector("depth")


def _one_hot(op: str, k: int) -> PixelDifferenceConv:
    conv = PixelDifferenceConv(op, 1, 1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight.view(-1)[k] = 1.0
    return conv


@pytest.mark.parametrize("k", [0, 1, 5, 8])
def test_pixel_difference_convolutions_follow_their_definitions(k):
    x = torch.arange(49, dtype=torch.float32).view(1, 1, 7, 7) ** 1.5
    dy, dx = k // 3 - 1, k % 3 - 1
    with torch.no_grad():
        central = _one_hot("cd", k)(x)[0, 0]
        assert central[3, 3] == pytest.approx(float(x[0, 0, 3 + dy, 3 + dx] - x[0, 0, 3, 3]))  # x_i - x_centre
        if k:
            ring = _one_hot("rd", k)(x)[0, 0]
            outer, inner = (
                divmod([0, 2, 4, 10, 14, 20, 22, 24][k - 1], 5),
                divmod([6, 7, 8, 11, 13, 16, 17, 18][k - 1], 5),
            )
            assert ring[3, 3] == pytest.approx(
                float(x[0, 0, 1 + outer[0], 1 + outer[1]] - x[0, 0, 1 + inner[0], 1 + inner[1]])
            )
        flat = torch.ones(1, 1, 7, 7)
        for op in ("cd", "ad", "rd"):  # differences vanish on a flat image (away from the zero padding)
            conv = PixelDifferenceConv(op, 1, 1)
            assert conv(flat)[0, 0, 2:5, 2:5].abs().max() < 1e-5
        assert PixelDifferenceConv("cv", 1, 1)(flat)[0, 0, 2:5, 2:5].abs().max() > 1e-3


def test_sketch_detector_is_pidinet_table5_and_loads_safetensors(tmp_path):
    torch.manual_seed(0)
    net = PiDiNet()
    names = net.state_dict()
    assert sum(v.numel() for v in names.values()) == 710_149  # PiDiNet's ~710K parameters
    for key in ("init_block.weight", "block1_3.conv2.weight", "block4_1.shortcut.bias", "dilations.2.conv2_4.weight",
                "attentions.1.conv2.weight", "conv_reduces.3.conv.bias", "classifier.weight"):  # fmt: skip
        assert key in names
    save_weights(net, tmp_path / SKETCH_FILE)
    image = np.random.default_rng(1).integers(0, 256, (18, 22, 3), dtype=np.uint8)
    prior = PriorDetector("sketch", tmp_path)(image)
    with torch.no_grad():
        fused = net(torch.from_numpy(image[:, :, ::-1].copy()).permute(2, 0, 1)[None].float() / 255)[-1][0, 0].numpy()
    np.testing.assert_array_equal(prior, (fused > 0.5).astype(np.float32))
    assert prior.shape == (18, 22)
    with pytest.raises(
        MissingDependencyError, match="sketch.safetensors: sketch detector weights missing: convert table5_pidinet.pth"
    ):
        load_sketch(tmp_path / "empty")


def test_class_prompt_appending_follows_the_paper():
    names = {0: "background", 1: "aeroplane", 2: "person", 3: "dining_table"}
    mask = np.array([[0, 2, 255], [1, 1, 0]], np.uint8)
    assert classes_in_mask(mask) == [1, 2]
    classes = class_prompt(classes_in_mask(mask), names)
    assert classes == "aeroplane, person"
    assert build_prompt(classes, "a pink plane on the tarmac") == "a pink plane on the tarmac; aeroplane, person"
    assert build_prompt(classes) == "aeroplane, person"  # the simple prompt
    assert build_prompt(class_prompt([3], names), None, "A photo of {classes}") == "A photo of dining table"
    assert build_prompt("", " a clean wall ") == "a clean wall"  # no labelled class: caption alone
    assert build_prompt(classes, "x", "{caption} -- {classes}") == "x -- aeroplane, person"
    with pytest.raises(OptionError, match="uses \\{caption\\}"):
        build_prompt(classes, None, "{caption}; {classes}")


@pytest.mark.parametrize("template", ["{classes} {size}", "no placeholder", "{0}"])
def test_bad_templates_are_refused(template):
    with pytest.raises(OptionError, match="--prompt-template"):
        check_template(template)


def test_read_captions(tmp_path):
    path = tmp_path / "captions.jsonl"
    path.write_text('{"stem": "a", "caption": "a dented panel"}\n\n{"stem": "b", "caption": "a wall"}\n')
    assert read_captions(path) == {"a": "a dented panel", "b": "a wall"}
    with pytest.raises(DatasetError, match="no caption for 1 condition image\\(s\\): c"):
        missing_captions(read_captions(path), ["a", "c"], path)
    for text, message in [('{"stem": "a"}\n', "each line must be"), ("{oops\n", "malformed JSON"),
                          ('{"stem": "a", "caption": "x"}\n' * 2, "duplicate stem"),
                          ('{"stem": "../x", "caption": "x"}\n', "invalid stem")]:  # fmt: skip
        path.write_text(text)
        with pytest.raises(DatasetError, match=message):
            read_captions(path)
    with pytest.raises(DatasetError, match="file not found"):
        read_captions(tmp_path / "missing.jsonl")


def test_plan_of_and_jobs(tmp_path):
    path = tmp_path / "plan.json"
    path.write_text(
        json.dumps(
            {
                "format": 1,
                "dataset": "data/x",
                "n_balance": 3,
                "plan": [{"stem": "b", "repeats": 2}, {"stem": "a", "repeats": 1}],
            }
        )
    )
    plan = plan_of(path, ["a", "b"])
    assert plan == [("b", 2), ("a", 1)]
    jobs = make_jobs(["a", "b"], plan, 1)
    assert [(j.index, j.out_stem) for j in jobs] == [(0, "b_sd0"), (1, "b_sd1"), (2, "a_sd0")]
    assert [j.out_stem for j in make_jobs(["a", "b"], None, 2)] == ["a_sd0", "a_sd1", "b_sd0", "b_sd1"]
    for plan_json, message in [({"format": 1, "plan": [{"stem": "z", "repeats": 1}]},
                                "plan stem 'z' is not among the condition images"),
                               # balancing.read_plan's rules
                               ({"format": 1, "plan": [{"stem": "a", "repeats": 0}]}, "plan entry 0"),
                               ({"plan": []}, "plan format None is not supported")]:  # fmt: skip
        path.write_text(json.dumps(plan_json))
        with pytest.raises(DatasetError, match=message):
            plan_of(path, ["a", "b"])


def test_conditions_spec_and_generation_size(tmp_path):
    assert parse_dataset_spec("data/voc:train") == (tmp_path.__class__("data/voc"), "train")
    assert parse_dataset_spec("data/voc")[1] is None
    odd = tmp_path / "a:b"
    odd.mkdir()
    assert parse_dataset_spec(str(odd)) == (odd, None)  # an existing folder wins over the split syntax
    assert generation_size(375, 500, 1024, 64) == (768, 1024)
    assert generation_size(1024, 2800, 1024, 64) == (384, 1024)
    assert generation_size(10, 1000, 64, 8) == (8, 64)


def test_lineart_detector_loads_safetensors_and_draws_bright_lines(tmp_path):
    torch.manual_seed(0)
    net = LineartGenerator()
    assert (
        "model0.1.weight" in net.state_dict() and "model2.2.conv_block.5.bias" in net.state_dict()
    )  # controlnet_aux's names
    save_weights(net, tmp_path / LINEART_FILE)
    loaded = load_lineart(tmp_path)
    image = np.random.default_rng(0).integers(0, 256, (20, 28, 3), dtype=np.uint8)
    prior = run_lineart(loaded, image)
    assert prior.shape == (20, 28) and prior.dtype == np.float32 and 0 <= prior.min() <= prior.max() <= 1
    with torch.no_grad():
        expected = 1 - net(torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255)[0, 0, :20, :28].numpy()
    np.testing.assert_allclose(prior, expected, atol=1e-5)
    np.testing.assert_array_equal(PriorDetector("lineart", tmp_path)(image), prior)


def test_lineart_without_weights_is_one_line(tmp_path):
    with pytest.raises(MissingDependencyError, match="--prior-weights"):
        PriorDetector("lineart", None)
    with pytest.raises(MissingDependencyError, match="lineart.safetensors: lineart detector weights missing"):
        load_lineart(tmp_path)
    save_weights(torch.nn.Linear(2, 2), tmp_path / LINEART_FILE)
    with pytest.raises(MissingDependencyError, match="does not hold lineart weights"):
        load_lineart(tmp_path)
