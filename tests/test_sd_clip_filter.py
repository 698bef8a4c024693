"""CLIP post-filter: scores equal CLIP's own cosine similarity, per-class selection, the dataset written."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from _sd_models import build_clip

from defectsynth.cli import app
from defectsynth.data import Dataset
from defectsynth.data.files import read_json
from defectsynth.errors import MissingDependencyError, OptionError
from defectsynth.sd_backend import clip_filter as clip_filter_module
from defectsynth.sd_backend.clip_filter import clip_scores, filter_by_clip, select_per_class

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return build_clip(tmp_path_factory.mktemp("clip") / "clip")


def test_scores_are_clip_cosine_similarities(clip):
    from transformers import CLIPModel, CLIPProcessor

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (40, 48, 3), dtype=np.uint8) for _ in range(3)]
    prompts = ["a photo of scratch", "a photo of spot, crack", "a photo of stain"]
    scores = clip_scores(images, prompts, clip, device="cpu", batch_size=2)
    model, processor = CLIPModel.from_pretrained(clip), CLIPProcessor.from_pretrained(clip)
    with torch.no_grad():
        for image, prompt, score in zip(images, prompts, scores):
            inputs = processor(text=[prompt], images=[image], return_tensors="pt", padding=True)
            out = model(**inputs)
            expected = torch.cosine_similarity(out.image_embeds, out.text_embeds).item()
            assert score == pytest.approx(expected, abs=1e-5)


def test_per_class_selection():
    scores = {"a": 0.9, "b": 0.1, "c": 0.5, "d": 0.5, "e": 0.2}
    groups = {"1": ["a", "b", "c"], "2": ["b", "d", "e"], "0": ["e"]}
    assert select_per_class(groups, scores, 1, None) == {"a", "d", "e"}
    assert select_per_class(groups, scores, 2, None) == {"a", "c", "d", "e"}
    assert select_per_class(groups, scores, None, 0.5) == {"a", "c", "d", "e"}  # ceil(1.5) = 2 per class
    assert select_per_class({"1": ["d", "c"]}, scores, 1, None) == {"c"}  # ties: by stem


def test_filter_writes_the_kept_samples_and_their_scores(runner, clip, toy_dataset, tmp_path):
    out = tmp_path / "kept"
    result = runner.invoke(
        app,
        [
            "filter",
            str(toy_dataset),
            "--out",
            str(out),
            "--by",
            "clip",
            "--clip-model",
            str(clip),
            "--keep-per-class",
            "2",
            "--device",
            "cpu",
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    real, kept = Dataset(toy_dataset), Dataset(out)
    report = read_json(out / "clip_scores.json")
    assert set(report["samples"]) == set(real.stems) and report["prompt_template"] == "a photo of {classes}"
    assert sorted(s for s, v in report["samples"].items() if v["kept"]) == kept.stems
    names = real.manifest.class_names
    for cls in range(1, 5):  # the two best of every class are kept
        holders = [s for s in real.stems if cls in np.unique(real.read_mask(s))]
        best = sorted(holders, key=lambda s: (-report["samples"][s]["score"], s))[:2]
        assert set(best) <= set(kept.stems), names[cls]
    stem = kept.stems[0]
    np.testing.assert_array_equal(kept.read(stem).image, real.read(stem).image)
    source = read_json(out / "dataset.json")["source"]
    assert source["filter"] == "clip" and source["keep_per_class"] == 2 and source["from"] == str(toy_dataset)
    assert set(kept.split("train")) == set(real.split("train")) & set(kept.stems)


def test_cli_maps_options(runner, toy_dataset, tmp_path):
    with mock.patch.object(clip_filter_module, "filter_by_clip", return_value=toy_dataset) as core:
        result = runner.invoke(
            app, ["filter", "s", "--out", str(tmp_path / "o"), "--by", "clip", "--clip-model", "c",
                  "--keep-fraction", "0.25", "--prompt-template", "{classes}", "--device", "cpu", "--batch-size", "4",
                  "--overwrite", "--no-progress"],
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    core.assert_called_once_with(
        Path("s"), tmp_path / "o", Path("c"), keep_per_class=None, keep_fraction=0.25, prompt_template="{classes}",
        device="cpu", batch_size=4, overwrite=True, progress=False,
    )  # fmt: skip


def test_bad_input(runner, clip, toy_dataset, tmp_path):
    args = ["filter", str(toy_dataset), "--out", str(tmp_path / "o"), "--by", "clip", "--clip-model", str(clip)]
    for extra, message in [([], "exactly one of --keep-per-class"),
                           (["--keep-per-class", "1", "--keep-fraction", "0.5"], "exactly one"),
                           (["--keep-fraction", "1.5"], "--keep-fraction must lie in"),
                           (["--keep-per-class", "0"], "at least 1"),
                           (["--keep-per-class", "1", "--prompt-template", "{caption}"], "no captions"),
                           (["--keep-per-class", "1", "--batch-size", "0"],
                            "--batch-size must be at least 1")]:  # fmt: skip
        result = runner.invoke(app, [*args, *extra])
        assert result.exit_code == 2 and message in result.stderr, (extra, result.output)
    with pytest.raises(MissingDependencyError, match="--clip-model: model folder not found"):
        filter_by_clip(toy_dataset, tmp_path / "o", tmp_path / "none", keep_per_class=1)
    with pytest.raises(OptionError):
        filter_by_clip(toy_dataset, tmp_path / "o", clip)
    assert not (tmp_path / "o").exists()


def test_options_of_another_by_are_refused(runner, toy_dataset, tmp_path):
    base = ["filter", str(toy_dataset), "--out", str(tmp_path / "o")]
    for args, message in [(["--by", "clip", "--keep-per-class", "1"], "--by clip needs --clip-model DIR"),
                          (["--by", "clip", "--clip-model", "c", "--top-k", "3"],
                           "--top-k cannot be used with --by clip (options that belong to --by segmenter"),
                          (["--by", "clip", "--clip-model", "c", "--clip-labels"],
                           "--clip-labels cannot be used with --by clip"),
                          (["--by", "boxes", "--clip-labels", "--clip-model", "c"],
                           "--clip-model cannot be used with --by boxes"),
                          (["--by", "segmenter", "--real", "r", "--keep-per-class", "2"],
                           "--keep-per-class cannot be used with --by segmenter")]:  # fmt: skip
        result = runner.invoke(app, [*base, *args])
        assert result.exit_code == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1, (
            args,
            result.output,
        )
    assert not (tmp_path / "o").exists()
