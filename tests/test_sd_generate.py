"""The sd-adapter backend end to end on tiny random SDXL pipelines saved with ``save_pretrained``:
real loading and generation (2 steps, 32 px), the synthetic dataset contract, seeding, errors."""

from __future__ import annotations

import builtins
import json
import shutil
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from _sd_models import build_blip2, build_sdxl

from defectsynth.cli import app
from defectsynth.data import Dataset
from defectsynth.data.files import read_image, read_json
from defectsynth.errors import MissingDependencyError, OptionError
from defectsynth.sd_backend import generate as generate_module
from defectsynth.sd_backend.pipeline import generate, load_pipeline
from defectsynth.seeds import derived_seed as sample_seed

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    return build_sdxl(tmp_path_factory.mktemp("sdxl"))


SD = ["sample", "--backend", "sd-adapter"]  # the one `sample` command, sd-adapter backend


def _one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def test_cli_maps_options_to_the_core_function(runner, toy_dataset, tmp_path):
    with mock.patch.object(generate_module, "sample_sd", return_value=toy_dataset) as core:
        result = runner.invoke(
            app,
            [*SD, "--conditions", f"{toy_dataset}:train", "--out", str(tmp_path / "o"), "--base", "b",
             "--controlnet", "c", "--plan", "p.json", "--num-per-condition", "3", "--prior", "canny",
             "--prior-weights", "w", "--blend", "0.6,1", "--captions", "c.jsonl",
             "--prompt-template", "a photo of {classes}", "--negative-prompt", "blurry", "--steps", "4",
             "--guidance", "5", "--conditioning-scale", "0.8", "--resolution", "512", "--seed", "7",
             "--batch-size", "2", "--device", "cpu", "--dtype", "float32", "--preview", "0", "--overwrite",
             "--no-progress"],
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    core.assert_called_once_with(
        f"{toy_dataset}:train", tmp_path / "o", Path("b"), adapter=None, controlnet=Path("c"), plan=Path("p.json"),
        num_per_condition=3, prior="canny", prior_weights=Path("w"), blend="0.6,1", captions=Path("c.jsonl"),
        captioner=None, prompt_template="a photo of {classes}", negative_prompt="blurry", steps=4, guidance=5.0,
        conditioning_scale=0.8, resolution=512, seed=7, batch_size=2, device="cpu", dtype="float32", preview=0,
        overwrite=True, progress=False, preset=None,
    )  # fmt: skip
    with mock.patch.object(generate_module, "sample_sd", return_value=toy_dataset) as core:
        result = runner.invoke(
            app, [*SD, "--conditions", str(toy_dataset), "--out", "o", "--base", "b", "--adapter", "a"]
        )
    assert result.exit_code == 0, result.output
    assert {k: core.call_args.kwargs[k] for k in ("steps", "guidance", "batch_size", "prior", "blend")} == {
        "steps": 30,
        "guidance": 7.5,
        "batch_size": 1,
        "prior": "lineart",
        "blend": "0.7,0.9",
    }  # the sd-adapter defaults
    text = runner.invoke(app, [*SD, "--help"], env={"COLUMNS": "200"}).output
    assert (
        "defectsynth sample --backend sd-adapter --conditions" in text
        and "defectsynth sample runs/wood --plan plan.json" in text
    )


def test_adapter_end_to_end_through_the_cli(runner, models, toy_dataset, tmp_path):
    captions = tmp_path / "captions.jsonl"
    stems = Dataset(toy_dataset).split("test")
    captions.write_text(
        "".join(json.dumps({"stem": s, "caption": f"a metal plate {i}"}) + "\n" for i, s in enumerate(stems))
    )
    out = tmp_path / "synth"
    result = runner.invoke(
        app,
        [*SD, "--conditions", f"{toy_dataset}:test", "--out", str(out), "--base", str(models["base"]), "--adapter",
         str(models["adapter"]), "--prior", "canny", "--captions", str(captions), "--steps", "2", "--resolution", "32",
         "--seed", "3", "--preview", "1", "--no-progress"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    real, synth = Dataset(toy_dataset), Dataset(out)
    manifest = read_json(out / "dataset.json")
    assert manifest["synthetic"] is True
    source = manifest["source"]
    assert {k: source[k] for k in ("backend", "base", "adapter", "steps", "seed", "blend", "prior")} == {
        "backend": "sd-adapter", "base": str(models["base"]), "adapter": str(models["adapter"]), "steps": 2, "seed": 3,
        "blend": [0.7, 0.9], "prior": "canny",
    }  # fmt: skip
    assert source["conditions"] == {"dataset": str(toy_dataset), "split": "test"}
    assert source["condition_of"] == {f"{s}_sd0": s for s in stems}
    assert synth.stems == sorted(f"{s}_sd0" for s in stems)
    names = real.manifest.class_names
    for stem in stems:
        condition, redrawn = real.read(stem), synth.read(f"{stem}_sd0")
        np.testing.assert_array_equal(redrawn.mask, condition.mask)  # the real mask is kept
        assert redrawn.boxes == condition.boxes and redrawn.image.shape == condition.image.shape
        assert not np.array_equal(redrawn.image, condition.image)
        classes = ", ".join(names[c] for c in sorted(set(np.unique(condition.mask)) - {0, 255}))
        assert source["prompts"][f"{stem}_sd0"] == f"a metal plate {stems.index(stem)}; {classes}"
    previews = sorted((out / "previews").iterdir())
    assert [p.name for p in previews] == [f"{stems[0]}.png"]
    assert read_image(previews[0]).shape == (32, 4 * 32 + 12, 3)


@pytest.mark.slow
def test_controlnet_with_a_plan_and_seeds_independent_of_batching(models, toy_dataset, tmp_path):
    stems = Dataset(toy_dataset).split("test")
    plan = tmp_path / "plan.json"
    plan.write_text(
        json.dumps(
            {"format": 1, "dataset": str(toy_dataset), "n_balance": 2, "plan": [{"stem": stems[1], "repeats": 2}]}
        )
    )
    kwargs = dict(
        controlnet=models["controlnet"],
        plan=plan,
        prior="canny",
        steps=2,
        resolution=32,
        seed=5,
        preview=0,
        progress=False,
    )
    captioner = mock.Mock(
        side_effect=lambda images: [f"a {images[0].shape[1]} px plate"]
    )  # the captioning model, see below
    with mock.patch.object(generate_module, "Captioner", return_value=captioner) as make_captioner:
        one = generate_module.sample_sd(
            toy_dataset, tmp_path / "one", models["base"], batch_size=1, captioner=tmp_path / "blip2", **kwargs
        )
        # no conditions: the plan's dataset (and split, none here) are used
        two = generate_module.sample_sd(
            None, tmp_path / "two", models["base"], batch_size=2, captioner=tmp_path / "blip2", **kwargs
        )
    make_captioner.assert_called_with(tmp_path / "blip2", device="cpu")
    assert read_json(two / "dataset.json")["source"]["conditions"] == {"dataset": str(toy_dataset), "split": None}
    assert Dataset(one).stems == [f"{stems[1]}_sd0", f"{stems[1]}_sd1"]
    source = read_json(one / "dataset.json")["source"]
    assert source["controlnet"] == str(models["controlnet"]) and source["captioner"] == str(tmp_path / "blip2")
    assert source["prompts"][f"{stems[1]}_sd0"].startswith("a 32 px plate; ")
    first, second = (read_image(one / "images" / f"{s}.png") for s in Dataset(one).stems)
    assert not np.array_equal(first, second)  # each redraw has its own seed
    for stem in Dataset(one).stems:
        diff = np.abs(
            read_image(one / "images" / f"{stem}.png").astype(int) - read_image(two / "images" / f"{stem}.png")
        )
        assert diff.max() <= 1


def test_generate_seeds_each_image_by_its_index(models):
    model = load_pipeline(models["base"], adapter=models["adapter"], device="cpu")
    assert model.kind == "adapter" and model.size_multiple == 8
    cond = np.zeros((32, 32, 3), np.uint8)
    cond[8:24, 8:24] = 255
    pair = generate(model, ["dent", "scratch"], [cond, cond], [sample_seed(0, 0), sample_seed(0, 1)], steps=2)
    alone = generate(model, ["scratch"], [cond], [sample_seed(0, 1)], steps=2)
    assert pair[0].shape == (32, 32, 3) and pair[0].dtype == np.uint8
    assert np.abs(pair[1].astype(int) - alone[0]).max() <= 1
    assert sample_seed(0, 1) != sample_seed(1, 0) and sample_seed(2, 3) == sample_seed(2, 3)


def test_missing_weights_give_one_line(runner, models, toy_dataset, tmp_path):
    base_args = [
        *SD,
        "--conditions",
        str(toy_dataset),
        "--out",
        str(tmp_path / "o"),
        "--prior",
        "canny",
        "--no-progress",
    ]
    line = _one_line_error(
        runner.invoke(app, [*base_args, "--base", str(tmp_path / "nope"), "--adapter", str(models["adapter"])])
    )
    assert "nope: --base: model folder not found" in line
    broken = Path(shutil.copytree(models["base"], tmp_path / "broken"))
    shutil.rmtree(broken / "unet")
    line = _one_line_error(runner.invoke(app, [*base_args, "--base", str(broken), "--adapter", str(models["adapter"])]))
    assert "cannot load the SDXL base pipeline" in line
    line = _one_line_error(runner.invoke(app, [*base_args, "--base", str(models["base"]), "--adapter", str(tmp_path)]))
    assert "--adapter: not a model folder, config.json is missing" in line
    line = _one_line_error(runner.invoke(app, [*base_args, "--base", str(models["base"])]))
    assert "exactly one of --adapter" in line
    assert not (tmp_path / "o").exists()


def test_bad_input_gives_one_line(runner, models, toy_dataset, tmp_path):
    args = [
        *SD,
        "--conditions",
        str(toy_dataset),
        "--out",
        str(tmp_path / "o"),
        "--base",
        str(models["base"]),
        "--adapter",
        str(models["adapter"]),
    ]
    assert "--blend" in _one_line_error(runner.invoke(app, [*args, "--blend", "0.7"]))
    assert "--steps must be at least 1" in _one_line_error(runner.invoke(app, [*args, "--steps", "0"]))
    assert "--prior-weights" in _one_line_error(runner.invoke(app, [*args, "--prior", "lineart"]))
    assert "not both" in _one_line_error(runner.invoke(app, [*args, "--captions", "x", "--captioner", "y"]))
    assert "split 'nope' not found" in _one_line_error(
        runner.invoke(app, [*args[:4], f"{toy_dataset}:nope", *args[5:]])
    )
    no_masks = Path(shutil.copytree(toy_dataset, tmp_path / "nomasks"))
    shutil.rmtree(no_masks / "masks")
    assert "has none" in _one_line_error(runner.invoke(app, [*args[:4], str(no_masks), *args[5:]]))
    assert "--conditions DATASET[:split] is required" in _one_line_error(runner.invoke(app, [*args[:3], *args[5:]]))


def test_missing_transformers_is_one_line(monkeypatch, models):
    real_import = builtins.__import__

    def no_transformers(name, *args, **kwargs):
        if name == "transformers" or name.startswith("transformers."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_transformers)
    with pytest.raises(MissingDependencyError, match=r"needs transformers: pip install 'defectsynth\[sd\]'"):
        load_pipeline(models["base"], adapter=models["adapter"])


def test_bad_dtype_is_one_line(models):
    with pytest.raises(OptionError, match="--dtype"):
        load_pipeline(models["base"], adapter=models["adapter"], dtype="float8")


def test_captioner_runs_a_local_blip2(tmp_path):
    from transformers import AutoProcessor, Blip2ForConditionalGeneration

    from defectsynth.sd_backend.prompts import Captioner

    folder = build_blip2(tmp_path / "blip2")
    images = [np.zeros((40, 40, 3), np.uint8), np.full((20, 30, 3), 200, np.uint8)]
    captions = Captioner(folder, max_new_tokens=4)(images)
    processor, model = AutoProcessor.from_pretrained(folder), Blip2ForConditionalGeneration.from_pretrained(folder)
    inputs = processor(images=images, return_tensors="pt")
    expected = processor.batch_decode(
        model.generate(**inputs, max_new_tokens=4, do_sample=False), skip_special_tokens=True
    )
    assert captions == [e.strip() for e in expected] and len(captions) == 2
    with pytest.raises(MissingDependencyError, match="--captioner: model folder not found"):
        Captioner(tmp_path / "none")
