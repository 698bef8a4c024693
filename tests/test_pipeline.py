"""A run folder is a diffusers pipeline (defectsynth.pipeline): plain diffusers loading, the same
images as `defectsynth sample`, save/load round trip, older run folders. Tiny models, 16 px, 2 steps."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline
from safetensors.torch import load_file

from defectsynth.data import Dataset
from defectsynth.diffusion.denoising import sample_generators
from defectsynth.diffusion.sampling import sample
from defectsynth.diffusion.training import train
from defectsynth.errors import DefectsynthError, OptionError
from defectsynth.pipeline import DefectsynthPipeline, model_index, write_model_index

TINY = {"model": "tiny", "batch_size": 4, "epochs": 1, "preview_every": 0, "progress": False}


@pytest.fixture(scope="module")
def isdm_run(data16, tmp_path_factory, one_thread) -> Path:
    return train(
        data16,
        out=tmp_path_factory.mktemp("runs") / "isdm",
        cond="mask",
        target="image",
        drop_rate=0.2,
        max_steps=2,
        **TINY,
    )


def _weights_equal(model, folder: Path) -> bool:
    saved = load_file(str(folder / "diffusion_pytorch_model.safetensors"))
    state = model.state_dict()
    return saved.keys() == state.keys() and all(torch.equal(saved[k], state[k]) for k in saved)


def test_plain_diffusers_loads_the_run_and_draws_what_sample_writes(tiny_run, tmp_path):
    pipe = DiffusionPipeline.from_pretrained(tiny_run)
    assert type(pipe) is DefectsynthPipeline and pipe.unet_ema is None
    assert _weights_equal(pipe.unet, tiny_run / "unet_ema")  # the EMA weights are the pipeline's unet
    assert not _weights_equal(pipe.unet, tiny_run / "unet")
    written = tmp_path / "synth"
    sample(tiny_run, out=written, num=3, scheduler="ddim", steps=2, seed=5, batch_size=3)
    ds = Dataset(written)
    stems = sorted(ds.stems, key=lambda s: json.loads((written / ".sampling" / f"{s}.json").read_text())["index"])
    out = pipe.use_sampler("ddim")(
        boxes=[ds.read_boxes(s) for s in stems], num_inference_steps=2, generator=sample_generators(5, [0, 1, 2]),
        output_type="np", batch_rows=3,
    )  # fmt: skip
    for i, stem in enumerate(stems):
        written_sample = ds.read(stem)
        assert np.array_equal(out.images[i], written_sample.image) and np.array_equal(out.masks[i], written_sample.mask)
    pil = pipe.use_sampler("ddim")(boxes=[[{"class": 1, "box": [2, 2, 9, 9]}]], num_inference_steps=2)
    assert pil.images[0].size == (16, 16) and pil.masks[0].mode == "L"


def test_save_pretrained_round_trip_and_plain_weights(tiny_run, tmp_path):
    pipe = DefectsynthPipeline.from_pretrained(tiny_run)
    pipe.save_pretrained(tmp_path / "saved")
    again = DiffusionPipeline.from_pretrained(tmp_path / "saved")
    assert _weights_equal(again.unet, tiny_run / "unet_ema") and again.config.run == pipe.config.run
    boxes = [[{"class": 2, "box": [0, 4, 8, 12]}], []]
    a, b = (
        p(boxes=boxes, num_inference_steps=2, generator=torch.Generator().manual_seed(1), output_type="np")
        for p in (pipe, again)
    )
    assert np.array_equal(a.images, b.images) and np.array_equal(a.masks, b.masks)
    plain = DefectsynthPipeline.from_pretrained(
        tiny_run, unet_ema=None
    )  # (DiffusionPipeline.from_pretrained does not skip optional components)
    assert _weights_equal(plain.unet, tiny_run / "unet")


def test_an_older_run_folder_loads_without_model_index(tiny_run, tmp_path):
    written = json.loads((tiny_run / "model_index.json").read_text())
    older = tmp_path / "older"
    shutil.copytree(tiny_run, older)
    (older / "model_index.json").unlink()
    pipe = DefectsynthPipeline.from_pretrained(older)
    assert _weights_equal(pipe.unet, older / "unet_ema") and dict(pipe.config.run) == written["run"]
    assert _weights_equal(DefectsynthPipeline.from_pretrained(older, unet_ema=None).unet, older / "unet")
    with pytest.raises(OptionError, match="torch_dtype"):
        DefectsynthPipeline.from_pretrained(older, torch_dtype=torch.float16)
    assert write_model_index(older) and json.loads((older / "model_index.json").read_text()) == written
    assert isinstance(DiffusionPipeline.from_pretrained(older), DefectsynthPipeline)


@pytest.mark.slow
def test_mask_conditioned_and_unconditional_runs(isdm_run, data16, tmp_path):
    pipe = DiffusionPipeline.from_pretrained(isdm_run)
    assert type(pipe.unet).__name__ == "SPADEUNet2DModel"
    index = json.loads((isdm_run / "model_index.json").read_text())
    assert index["unet"] == ["defectsynth.diffusion.spade_unet", "SPADEUNet2DModel"] and index["run"]["cond"] == "mask"
    masks = [Dataset(data16).read(s).mask for s in Dataset(data16).stems[:2]]
    out = pipe(
        masks=masks, num_inference_steps=25, generator=torch.Generator().manual_seed(0), output_type="np"
    )  # ISDM: rescaled, guidance 1.5
    assert out.images.shape == (2, 16, 16, 3) and np.array_equal(out.masks, np.stack(masks))
    unconditional = train(data16, out=tmp_path / "masks", cond="none", target="mask", ema=False, max_steps=1, **TINY)
    assert json.loads((unconditional / "model_index.json").read_text())["unet_ema"] == [None, None]
    drawn = DiffusionPipeline.from_pretrained(unconditional).use_sampler("dpm")(
        batch_size=3, num_inference_steps=2, output_type="np"
    )
    assert drawn.images.shape == (3, 16, 16, 3) and drawn.masks.shape == (3, 16, 16)


def test_bad_requests_are_one_line_errors(tiny_run, isdm_run):
    pipe = DefectsynthPipeline.from_run(tiny_run)
    isdm = DefectsynthPipeline.from_run(isdm_run)
    cases = [
        (lambda: pipe(masks=[np.zeros((16, 16), np.uint8)]), "samples from boxes=.*masks not taken"),
        (lambda: isdm(boxes=[[]]), "samples from masks=.*boxes not taken"),
        (lambda: pipe(boxes=[[{"class": 1, "box": [0, 0, 20, 4]}]]), r"boxes\[0\]: .*outside the 16x16 image"),
        (
            lambda: pipe(boxes=[[{"class": 9, "box": [0, 0, 4, 4]}]]),
            r"boxes\[0\]: entry 0: class 9 is not a defect class",
        ),
        (lambda: pipe(boxes=[[{"class": 1, "box": [0, 0, 4, 4]}, (1, 0, 0, 4, 4)]]), r"boxes\[0\]: entry 1 must be \{"),
        (lambda: isdm(masks=[np.zeros((8, 8), np.uint8)]), r"masks\[0\]: shape \(8, 8\)"),
        (lambda: isdm(masks=[np.full((16, 16), 7, np.uint8)]), r"masks\[0\]: class ids \[7\]"),
        (lambda: pipe(boxes=[[], []], generator=[torch.Generator()]), "1 generators for a batch of 2"),
        (lambda: pipe(boxes=[[]], output_type="latent"), "output_type"),
        (lambda: pipe(boxes=[[]], guidance_scale=2.0), "guidance_scale needs a run trained with --drop-rate"),
        (lambda: pipe(boxes=[[]], num_inference_steps=0), "--steps"),
    ]
    for call, message in cases:
        with pytest.raises(DefectsynthError, match=message):
            call()


def test_model_index_is_what_save_pretrained_writes(tiny_run, tmp_path):
    from defectsynth.diffusion.trained_run import Run

    DefectsynthPipeline.from_pretrained(tiny_run).save_pretrained(tmp_path / "saved")
    saved = json.loads((tmp_path / "saved" / "model_index.json").read_text())
    mine = model_index(Run.open(tiny_run).info)
    skip = ("unet_ema", "_name_or_path")  # save_pretrained: the EMA network is its unet; where it was loaded from
    assert {k: v for k, v in saved.items() if k not in skip} == {k: v for k, v in mine.items() if k not in skip}
