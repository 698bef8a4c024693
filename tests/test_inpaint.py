"""``train --context --crop`` and ``sample --onto``: defects painted into real images (tiny models,
32 px crops of 48-64 px images, 2 sampling steps)."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from _launch import two_cpu_processes
from safetensors.torch import load_file

from defectsynth.cli import app
from defectsynth.data import Box, Dataset
from defectsynth.data.files import read_image, write_image, write_json
from defectsynth.data.prepare import prepare
from defectsynth.data.resize import scale_box
from defectsynth.diffusion import canvas, inpaint
from defectsynth.diffusion.canvas import Area, plan_windows, window_weights
from defectsynth.diffusion.conditioning import to_grey
from defectsynth.diffusion.context import ContextSet, region_mask
from defectsynth.diffusion.inpaint import blend_weights, in_colour, place_randomly
from defectsynth.diffusion.losses import diffusion_loss
from defectsynth.diffusion.sampling import sample
from defectsynth.diffusion.schedules import train_scheduler
from defectsynth.diffusion.training import train
from defectsynth.errors import OptionError, OutputExistsError

TINY = {"model": "tiny", "batch_size": 4, "preview_every": 0, "progress": False, "mixed_precision": "no"}
FAST = {"scheduler": "ddim", "steps": 2}
MARGIN = 3


@pytest.fixture(scope="module")
def data64(tmp_path_factory) -> Path:
    """8 toy images at 64x64 with defects (splits train 5, val 2, test 1)."""
    out = tmp_path_factory.mktemp("d64") / "toy"
    prepare("toy", out, num=8, size="64", seed=3, split_fractions="0.6,0.2,0.2")
    return out


@pytest.fixture(scope="module")
def plain(tmp_path_factory) -> Path:
    """A folder of three defect-free plain images of other sizes and aspects (48x64, 64x48, 56x56)."""
    folder = tmp_path_factory.mktemp("plain")
    rng = np.random.default_rng(0)
    for name, (h, w) in {"a": (48, 64), "b": (64, 48), "c": (56, 56)}.items():
        texture = (rng.normal(128, 20, (h, w, 1)) + np.linspace(0, 40, w)[None, :, None]).clip(0, 255).astype(np.uint8)
        write_image(folder / f"{name}.png", np.repeat(texture, 3, axis=2) + np.array([0, 5, 10], np.uint8))
    return folder


@pytest.fixture(scope="module")
def context_run(data64, tmp_path_factory, one_thread) -> Path:
    out = tmp_path_factory.mktemp("runs") / "ctx"
    return train(data64, out=out, context=True, crop=32, context_margin=MARGIN, max_steps=2, **TINY)


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and ".sampling" not in p.parts
    }


def test_context_run_records_its_layout_and_learns_only_in_the_region(context_run, data64):
    info = json.loads((context_run / "run.json").read_text())
    assert (info["args"]["context"], info["args"]["crop"], info["args"]["context_margin"]) == (True, 32, MARGIN)
    assert info["size"] == [32, 32] and info["layout"]["context_channels"] == 4  # RGB + region
    assert info["unet"]["in_channels"] == info["layout"]["target_channels"] * 2 + info["layout"]["cond_channels"] + 4
    # the windows: seeded by (seed, step, item), each box inside its window with its margin
    ds = Dataset(data64)
    data = ContextSet(
        [ds.read(s) for s in ds.split("train")], "basd", ds.manifest.num_classes, "rgb", 32, MARGIN, seed=0
    )
    index = torch.arange(len(data))
    x0, cond = data.cut(index, 5)
    again, cond_again = data.cut(index, 5)
    assert torch.equal(x0, again) and torch.equal(cond, cond_again) and not torch.equal(cond, data.cut(index, 6)[1])
    assert cond.shape[1] == 1 + 3 + 3 + 1 and x0.shape[1:] == (3 + 3, 32, 32)
    region = cond[:, -1] > 0
    assert region.any(dim=(1, 2)).all()  # every window has a region (random rectangles in the free ones)
    assert (cond[:, -4:-1][region[:, None].expand(-1, 3, -1, -1)] == 0).all()  # the known image is blanked inside it
    defect = x0[:, 3:].max(dim=1).values > 0  # a mask bit set: a defect pixel
    assert not (defect & ~region).any()  # every defect pixel lies in the region


def test_the_loss_counts_only_the_region():
    torch.manual_seed(0)
    x0, noise, out = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    t = torch.tensor([10, 500])
    s = train_scheduler("fixed")
    region = torch.zeros(2, 1, 8, 8)
    region[:, :, 2:5, 3:6] = 1
    loss = diffusion_loss(out, noise, x0, x0, t, s.betas, s.alphas_cumprod, False, "sample", region=region)
    changed = torch.where(region.bool(), out, out + 5)
    assert torch.allclose(
        loss, diffusion_loss(changed, noise, x0, x0, t, s.betas, s.alphas_cumprod, False, "sample", region=region)
    )
    inside = ((out - x0) ** 2)[:, :, 2:5, 3:6].mean()
    assert torch.allclose(loss, inside)


@pytest.mark.slow
def test_resume_of_a_context_run_equals_the_uninterrupted_run(data64, tmp_path, one_thread):
    whole = train(data64, out=tmp_path / "whole", context=True, crop=32, max_steps=3, **TINY)
    train(data64, out=tmp_path / "parts", context=True, crop=32, max_steps=2, checkpoint_every=2, **TINY)
    parts = train(data64, out=tmp_path / "parts", context=True, crop=32, max_steps=3, resume=True, **TINY)
    a, b = (load_file(r / "unet" / "diffusion_pytorch_model.safetensors") for r in (whole, parts))
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    with pytest.raises(OptionError, match="--crop"):
        train(data64, out=tmp_path / "parts", context=True, crop=16, max_steps=4, resume=True, **TINY)
    with pytest.raises(
        OptionError, match="--class-fill nearest cannot be used with --context"
    ):  # context windows fill inside boxes
        train(data64, out=tmp_path / "nearest", context=True, crop=32, class_fill="nearest", max_steps=1, **TINY)
    assert not (tmp_path / "nearest").exists()


def test_onto_keeps_the_input_exactly_outside_the_region(context_run, data64, plain, tmp_path):
    out = tmp_path / "painted"
    manifest = sample(
        context_run, out=out, onto=plain, conditions=f"{data64}:train", num=4, seed=1, batch_size=2, **FAST
    )
    assert (
        manifest.synthetic
        and manifest.source["onto"]["path"] == str(plain.resolve())
        and manifest.source["placement"] == "keep"
    )
    ds, conditions = Dataset(out), Dataset(data64)
    assert ds.stems == ["a-0", "a-1", "b-0", "c-0"]  # image i mod 3, round i div 3
    for stem in ds.stems:
        s = ds.read(stem)
        onto, condition = manifest.source["onto_of"][stem], manifest.source["condition_of"][stem]
        given = read_image(plain / f"{onto}.png")
        ch, cw = conditions.read(condition).size
        expected = [
            scale_box(b, s.size[1] / cw, s.size[0] / ch, s.size[1], s.size[0]) for b in conditions.read_boxes(condition)
        ]
        assert s.boxes == expected  # placement keep: the condition's boxes, scaled to the image
        region = region_mask(s.boxes, s.size, MARGIN)
        assert region.any() and np.array_equal(s.image[~region], given[~region])  # byte for byte outside
        assert not s.mask[~region].any()
        assert not s.mask[~region_mask(s.boxes, s.size, 0)].any()  # the mask lies inside its boxes
        assert not np.array_equal(s.image[region], given[region])  # painted inside
    previews = sorted(p.name for p in (out / "previews").glob("onto-*.png"))
    assert previews == [f"onto-{s}.png" for s in ds.stems]
    row = read_image(out / "previews" / "onto-a-0.png")
    assert row.shape[1] == 3 * row.shape[0] * 64 // 48  # input | output | overlay


@pytest.mark.slow
def test_onto_results_do_not_depend_on_batch_size_and_reruns_skip(context_run, data64, plain, tmp_path):
    options = dict(onto=plain, conditions=f"{data64}:train", num=4, placement="random", seed=5, **FAST)
    sample(context_run, out=tmp_path / "b1", batch_size=1, **options)
    sample(context_run, out=tmp_path / "b3", batch_size=3, **options)
    one, three = Dataset(tmp_path / "b1"), Dataset(tmp_path / "b3")
    for stem in one.stems:
        a, b = one.read(stem), three.read(stem)
        assert a.boxes == b.boxes and np.array_equal(a.mask, b.mask)
        assert (
            np.abs(a.image.astype(int) - b.image.astype(int)).max() <= 1
        )  # convolution kernels by batch size: one level at most
    before = _digest(tmp_path / "b3")
    for sub, suffix in (("images", "png"), ("masks", "png"), (".sampling", "json")):
        (tmp_path / "b3" / sub / f"b-0.{suffix}").unlink()
    sample(context_run, out=tmp_path / "b3", batch_size=3, **options)
    assert _digest(tmp_path / "b3") == before
    with pytest.raises(OutputExistsError, match="other settings"):
        sample(context_run, out=tmp_path / "b3", batch_size=3, **dict(options, placement="keep"))


def test_random_placement_moves_boxes_to_free_places(context_run, data64, tmp_path):
    onto = f"{data64}:val"  # a dataset folder: its own boxes stay free, its own mask is kept outside the region
    m = sample(
        context_run,
        out=tmp_path / "r",
        onto=onto,
        conditions=f"{data64}:train",
        num=2,
        placement="random",
        seed=2,
        **FAST,
    )
    ds, src = Dataset(tmp_path / "r"), Dataset(data64)
    moved = False
    for stem in ds.stems:
        s, given = ds.read(stem), src.read(m.source["onto_of"][stem])
        new = s.boxes[len(given.boxes) :]
        assert s.boxes[: len(given.boxes)] == given.boxes
        keep = src.read_boxes(m.source["condition_of"][stem])
        moved |= new != keep
        region = region_mask(new, s.size, MARGIN)
        assert np.array_equal(s.image[~region], given.image[~region]) and np.array_equal(
            s.mask[~region], given.mask[~region]
        )
    assert moved


def test_random_placement_leaves_out_a_box_with_no_free_place():
    own = [Box(1, 0, 0, 40, 64)]  # a 64x64 image whose left 40 columns are its own defect
    boxes = [Box(1, 2, 2, 12, 12), Box(1, 0, 0, 30, 30), Box(1, 5, 40, 15, 50)]
    placed, unplaced = place_randomly(boxes, own, (64, 64), 2, np.random.default_rng(0))
    assert unplaced == [1]  # 30 px do not fit the 24 free columns less the margins; never kept where it was
    assert [(b.x_max - b.x_min, b.y_max - b.y_min) for b in placed] == [(10, 10), (10, 10)]
    grown = [(b.x_min - 2, b.y_min - 2, b.x_max + 2, b.y_max + 2) for b in placed + own]
    for i, (ax0, ay0, ax1, ay1) in enumerate(grown):
        for bx0, by0, bx1, by1 in grown[i + 1 :]:
            assert ax1 <= bx0 or bx1 <= ax0 or ay1 <= by0 or by1 <= ay0  # margins included, no overlap


def test_boxes_random_placement_leaves_out_are_not_painted(context_run, data64, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(inpaint, "PLACEMENT_TRIES", 0)  # no box finds a place
    with caplog.at_level("WARNING", logger="defectsynth.diffusion.inpaint"):
        m = sample(
            context_run,
            out=tmp_path / "r",
            onto=f"{data64}:val",
            conditions=f"{data64}:train",
            num=2,
            placement="random",
            seed=2,
            **FAST,
        )
    ds, src = Dataset(tmp_path / "r"), Dataset(data64)
    total = 0
    for stem in ds.stems:
        s, given = ds.read(stem), src.read(m.source["onto_of"][stem])
        n = len(src.read_boxes(m.source["condition_of"][stem]))
        total += n
        assert m.source["unplaced"].get(stem, []) == list(range(n))
        assert s.boxes == given.boxes  # the image's own boxes only
        assert np.array_equal(s.image, given.image) and np.array_equal(s.mask, given.mask)  # nothing painted
    assert total > 0 and f"{total} of {total} boxes found no free place" in caplog.text


def test_a_grey_run_paints_only_the_luminance_of_colour_images():
    image = np.array([[[100, 110, 120], [50, 50, 50], [250, 10, 10]]], np.uint8)
    assert to_grey(image[None])[0, 0, :, 0].tolist() == [108, 50, 82]
    painted = np.array([[[118], [70], [100]]], np.uint8)
    assert in_colour(painted, image).tolist() == [[[110, 120, 130], [70, 70, 70], [255, 28, 28]]]
    rgb = np.zeros((1, 1, 3), np.uint8)
    assert in_colour(rgb, image) is rgb  # a colour run's pixels as painted


def test_onto_with_a_grey_run_keeps_the_colour_of_the_input(data64, plain, tmp_path, one_thread):
    grey = dict(context=True, crop=32, context_margin=MARGIN, channels="grey", max_steps=2)
    run = train(data64, out=tmp_path / "grey", **grey, **TINY)
    m = sample(run, out=tmp_path / "p", onto=plain, conditions=f"{data64}:train", num=3, seed=1, **FAST)
    ds = Dataset(tmp_path / "p")
    for stem in ds.stems:
        s = ds.read(stem)
        given = read_image(plain / f"{m.source['onto_of'][stem]}.png").astype(int)
        region = region_mask(s.boxes, s.size, MARGIN)
        out = s.image.astype(int)
        assert np.array_equal(out[~region], given[~region])
        boxes = region_mask(s.boxes, s.size, 0)  # painted pixels as painted (the band blends them in)
        inside = boxes & (out.min(axis=2) > 0) & (out.max(axis=2) < 255)  # not clipped
        assert inside.any() and not np.array_equal(out[region], given[region])
        for c in (0, 2):  # the input's colour cast (G - 5, B + 5) stays, up to rounding
            assert np.abs((out[..., c] - out[..., 1]) - (given[..., c] - given[..., 1]))[inside].max() <= 1


def test_plan_windows_overlap_over_a_large_region_and_group_close_boxes():
    size, crop = (64, 96), (32, 32)
    big = [Box(1, 5, 5, 70, 50)]  # larger than a window: tiled at a stride of at most half a window
    windows = plan_windows(big, size, crop, MARGIN)
    covered = np.zeros(size, int)
    for x0, y0 in windows:
        assert 0 <= x0 <= size[1] - crop[1] and 0 <= y0 <= size[0] - crop[0]
        covered[y0 : y0 + 32, x0 : x0 + 32] += 1
    region = region_mask(big, size, MARGIN)
    assert (covered[region] >= 1).all() and (covered[region] >= 2).mean() > 0.5  # covered, mostly twice or more
    xs, ys = sorted({x for x, _ in windows}), sorted({y for _, y in windows})
    assert max(np.diff(xs)) <= 16 and max(np.diff(ys)) <= 16
    close = [Box(1, 10, 10, 16, 16), Box(2, 20, 12, 26, 20), Box(1, 80, 50, 90, 60)]
    assert len(plan_windows(close, size, crop, MARGIN)) == 2  # the first two share a window
    weights = blend_weights(region_mask(close[:1], size, MARGIN), MARGIN)
    assert (
        (weights[10:16, 10:16] == 1).all() and weights[0, 0] == 0 and 0 < weights[8, 12] < 1
    )  # the band is the margin


def test_a_canvas_pixel_under_two_windows_gets_their_blended_output():
    windows, n = [(0, 0), (8, 0)], 16  # two windows overlapping by half on a 16 x 24 canvas
    area = Area(
        0, 0, torch.zeros(1, 2, 16, 24), torch.ones(1, 1, 16, 24, dtype=torch.bool), windows, torch.zeros(2, 1, n, n)
    )
    outs = torch.stack([torch.full((2, n, n), 1.0), torch.full((2, n, n), 3.0)])
    canvas = area.blend(outs)[0]
    tent = window_weights(n, n)
    assert torch.equal(canvas[:, :, :8], torch.ones(2, 16, 8)) and torch.equal(
        canvas[:, :, 16:], torch.full((2, 16, 8), 3.0)
    )  # one window: its output
    w_left, w_right = (
        tent[:, 8:],
        tent[:, :8],
    )  # the overlap: the left window's right half, the right window's left half
    assert torch.allclose(canvas[0, :, 8:16], (w_left * 1.0 + w_right * 3.0) / (w_left + w_right))
    assert canvas[0, 8, 9] < 2 < canvas[0, 8, 14]  # nearer a window's centre, nearer its output
    x = torch.arange(2 * 16 * 24, dtype=torch.float32).reshape(1, 2, 16, 24)
    assert torch.equal(area.cut(x)[1], x[0, :, :, 8:24])


def test_onto_denoises_a_large_region_with_overlapping_windows_in_one_pass(
    context_run, data64, tmp_path, monkeypatch, caplog
):
    """A box larger than the run's 32 px window: the network sees overlapping windows, all at every step."""
    cond = tmp_path / "cond"
    prepare("toy", cond, num=2, size="64", seed=3)
    for stem in Dataset(cond).stems:  # one large box per image: 46 x 40 px
        write_json(cond / "boxes" / f"{stem}.json", [Box(1, 8, 10, 54, 50).to_json()])
    calls = []
    real = canvas.run_windows
    monkeypatch.setattr(
        canvas,
        "run_windows",
        lambda model, inputs, time, rows: calls.append(len(inputs)) or real(model, inputs, time, rows),
    )
    out = tmp_path / "big"
    with caplog.at_level("WARNING", logger="defectsynth.diffusion.inpaint"):
        sample(context_run, out=out, onto=f"{data64}:val", conditions=str(cond), num=2, seed=1, batch_size=2, **FAST)
    assert "2 of 2 boxes (with the 3 px margin) are larger than the run's 32x32 window" in caplog.text
    windows = plan_windows([Box(1, 8, 10, 54, 50)], (64, 64), (32, 32), MARGIN)
    assert (
        len(windows) > 2 and calls == [2 * len(windows)] * FAST["steps"]
    )  # every window of both samples at every step
    ds, src = Dataset(out), Dataset(data64)
    for stem in ds.stems:
        s, given = ds.read(stem), src.read(ds.manifest.source["onto_of"][stem])
        new = s.boxes[len(given.boxes) :]
        region = region_mask(new, s.size, MARGIN)
        assert np.array_equal(s.image[~region], given.image[~region]) and np.array_equal(
            s.mask[~region], given.mask[~region]
        )
        assert not s.mask[region & ~region_mask(new, s.size, 0)].any()


def test_bad_inputs_exit_2_with_one_line(context_run, data64, plain, tmp_path, runner):
    base = ["sample", str(context_run), "--conditions", f"{data64}:train", "--scheduler", "ddim", "--steps", "2"]
    small = tmp_path / "small"
    write_image(small / "tiny.png", np.zeros((24, 40, 3), np.uint8))
    cases = {
        "--onto: ": [*base, "--onto", str(tmp_path / "missing"), "--out", str(tmp_path / "o1")],
        "smaller than the run's crop 32x32": [*base, "--onto", str(small), "--out", str(tmp_path / "o2")],
        "--onto is required": [*base, "--out", str(tmp_path / "o3")],
        "--placement needs --onto": [
            "sample",
            str(context_run),
            "--placement",
            "random",
            "--out",
            str(tmp_path / "o4"),
        ],
        "--crop needs --context": ["train", str(data64), "--crop", "32", "--out", str(tmp_path / "t1")],
        "--size cannot be used with --crop": [
            "train",
            str(data64),
            "--context",
            "--crop",
            "32",
            "--size",
            "32",
            "--out",
            str(tmp_path / "t2"),
        ],
        "--context needs --cond basd or boxmask": [
            "train",
            str(data64),
            "--context",
            "--cond",
            "none",
            "--out",
            str(tmp_path / "t3"),
        ],
        "smaller than --crop 96": [
            "train",
            str(data64),
            "--context",
            "--crop",
            "96",
            "--model",
            "tiny",
            "--out",
            str(tmp_path / "t4"),
        ],
    }
    for expected, args in cases.items():
        result = runner.invoke(app, [*args, "--no-progress"])
        assert result.exit_code == 2 and expected in result.output and len(result.output.strip().splitlines()) == 1, (
            expected,
            result.output,
        )
    assert not (tmp_path / "o2").exists() and not (tmp_path / "t4").exists()


def test_onto_needs_a_context_run(data64, plain, tmp_path, one_thread):
    run = train(data64, out=tmp_path / "plain-run", size="32", max_steps=1, **TINY)
    with pytest.raises(OptionError, match="--onto needs a run trained with --context"):
        sample(run, out=tmp_path / "o", onto=plain, **FAST)


@pytest.mark.slow
def test_two_processes_paint_what_one_paints(context_run, data64, plain, tmp_path):
    """``accelerate launch`` with two CPU processes (as tests/test_train_sample.py) writes the bytes one process
    writes."""
    launch, env = two_cpu_processes()
    launch = [*launch, "-m", "defectsynth"]
    options = dict(onto=plain, conditions=f"{data64}:train", num=3, placement="random", seed=4, batch_size=2, **FAST)
    subprocess.run(
        [
            *launch,
            "sample",
            str(context_run),
            "--out",
            str(tmp_path / "two"),
            "--onto",
            str(plain),
            "--conditions",
            f"{data64}:train",
            "--num",
            "3",
            "--placement",
            "random",
            "--seed",
            "4",
            "--batch-size",
            "2",
            "--scheduler",
            "ddim",
            "--steps",
            "2",
            "--no-progress",
        ],
        check=True,
        env=env,
        timeout=900,
    )  # a busy shared CPU starves the two processes for minutes
    sample(context_run, out=tmp_path / "one", **options)
    assert _digest(tmp_path / "one") == _digest(tmp_path / "two")


def test_a_crop_too_small_for_the_boxes_is_named_with_one_that_fits(caplog):
    from defectsynth.diffusion.context import check_crop_fits

    boxes = [Box(1, 0, 0, side, 4) for side in (8, 10, 20, 30, 40, 50, 56, 56, 60, 70)]
    with caplog.at_level("WARNING", logger="defectsynth.diffusion.context"):
        check_crop_fits(boxes, 68, 4)  # 1 of 10 (78 px with its margins) does not fit: no more than 10%
        assert not caplog.text
        check_crop_fits(boxes, 32, 4)  # 7 of 10 do not; the 90th percentile side with margins is 69 px
    assert "--crop 32: 7 of 10 training boxes, grown by the 4 px margin, do not fit" in caplog.text
    assert "--crop 72 fits 90% of them" in caplog.text
