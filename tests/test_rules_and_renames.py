"""Each rule the package used to write several times now has one home, and renamed options keep
their old spellings (hidden, warning) for one release."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch

from defectsynth.cli import app
from defectsynth.data.files import write_dir
from defectsynth.data.model import index_by_stem, stray_class_ids
from defectsynth.data.prepare import prepare
from defectsynth.errors import DatasetError, OptionError, first_line, summary
from defectsynth.filtering import filter_dataset
from defectsynth.formats.dataset import check_mask_ids
from defectsynth.metrics.sae_ebr import sae_ebr_counts
from defectsynth.metrics.segmentation import get_stats
from defectsynth.seeds import derived_seed

WIDE = {"COLUMNS": "200"}


# -- one rule, one place --------------------------------------------------------------------------
def test_first_line_and_summary():
    assert first_line(ValueError("\n  bad header\ntraceback detail")) == "bad header"
    assert first_line(KeyError()) == "KeyError"  # nothing to show: the type's name, never an IndexError
    assert summary(OSError("disk full\nmore")) == "OSError: disk full"
    assert summary(RuntimeError()) == "RuntimeError"


@pytest.mark.parametrize("parts", [(0, 0), (7, 3, 0x5A3F), (2**40, 5, 1, 0xC0417)])
def test_derived_seed_keeps_the_seeds_written_before(parts):
    # the three former copies: training's derived_seed / the SD backend's sample_seed (63 bits) and
    # evaluate's cell seed (31 bits); a changed value would change every run, sample and report
    state = np.random.SeedSequence(list(parts))
    assert derived_seed(*parts) == int(state.generate_state(2, np.uint64)[0] >> np.uint64(1))
    assert derived_seed(*parts, bits=31) == int(state.generate_state(1)[0] & 0x7FFFFFFF)
    with pytest.raises(ValueError, match="bits"):
        derived_seed(*parts, bits=32)


def test_stray_class_ids_on_arrays_and_tensors():
    mask = np.array([[0, 1, 255], [3, 1, 0]], np.uint8)
    assert stray_class_ids(mask, {0, 1}) == [3]
    assert stray_class_ids(mask.astype(np.int64), range(2), ignore=None) == [3, 255]
    assert stray_class_ids(torch.from_numpy(mask).long(), range(4)) == []
    assert stray_class_ids(torch.tensor([-1, 2, 70000]), {2}) == [-1, 70000]  # a range too wide for a bincount
    with pytest.raises(DatasetError, match=r"mask holds class ids \[3\] not declared"):
        check_mask_ids(mask, {0, 1}, "m.png")
    with pytest.raises(ValueError, match=r"class ids must lie in 0\.\.2"):
        get_stats(torch.zeros(1, 2, 3, dtype=torch.long), torch.from_numpy(mask[None]).long(), 3)
    assert get_stats(torch.zeros(1, 2, 3, dtype=torch.long), torch.from_numpy(mask[None]).long(), 4)[0].shape == (1, 4)
    with pytest.raises(ValueError, match=r"mask holds class ids \[3\] >= num_classes 2"):
        sae_ebr_counts(mask, np.zeros((0, 4)), np.zeros(0), 2)


def test_index_by_stem_names_both_files(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    assert index_by_stem([a / "x.png", a / "y.jpg"]) == {"x": a / "x.png", "y": a / "y.jpg"}
    with pytest.raises(DatasetError, match=r"duplicate stem 'x' \(also x\.png\)"):
        index_by_stem([a / "x.png", a / "x.jpg"])
    with pytest.raises(DatasetError, match=re.escape(f"duplicate map 'x' (also {a / 'x_m.bmp'})")):
        index_by_stem([a / "x_m.bmp", b / "x_m.bmp"], lambda p: p.name[: -len("_m.bmp")], "map")
    with pytest.raises(DatasetError, match="invalid stem"):
        index_by_stem([a / "bad name.png"])


def test_write_dir_replaces_whole_or_not_at_all(tmp_path):
    folder = tmp_path / "net"

    def write(text):
        def fill(tmp: Path) -> None:
            tmp.mkdir()
            (tmp / "config.json").write_text(text)
            if text == "boom":
                raise OSError("disk full")

        return fill

    write_dir(folder, write("1"))
    write_dir(folder, write("2"))
    assert (folder / "config.json").read_text() == "2"
    with pytest.raises(OSError):
        write_dir(folder, write("boom"))
    assert (folder / "config.json").read_text() == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net"]  # no partial or old folder left


# -- renames: the new and the old spelling do the same; the old one warns and is not in --help -------
def _help(runner, command: str) -> str:
    result = runner.invoke(app, [command, "--help"], env=WIDE)
    assert result.exit_code == 0, result.output
    return result.output


def test_prepare_split_fractions_and_its_old_spelling(runner, tmp_path):
    calls = []
    for spelling in ("--split-fractions", "--split"):
        with (
            mock.patch(
                "defectsynth.data.prepare.prepare", return_value=mock.Mock(classes=[], source={}, stats={})
            ) as core,
            mock.patch("defectsynth.commands.prepare.print_dataset_summary"),
        ):
            result = runner.invoke(app, ["prepare", "toy", "--out", str(tmp_path / "o"), spelling, "0.5,0.5"], env=WIDE)
        assert result.exit_code == 0, result.output
        calls.append(core.call_args)
        assert ("--split is deprecated, use --split-fractions" in result.output) == (spelling == "--split")
    assert calls[0] == calls[1] and calls[0].kwargs["split_fractions"] == "0.5,0.5"
    both = runner.invoke(
        app, ["prepare", "toy", "--out", str(tmp_path / "o"), "--split", "1", "--split-fractions", "0.5,0.5"], env=WIDE
    )
    assert both.exit_code == 2 and "--split is the deprecated name of --split-fractions" in both.output
    text = _help(runner, "prepare")
    assert "--split-fractions" in text and not re.search(r"--split(?!-)", text)


def test_prepare_old_keyword_writes_the_same_dataset(tmp_path):
    prepare("toy", tmp_path / "new", num=4, size="16", split_fractions="0.5,0.5")
    with pytest.warns(DeprecationWarning, match="'split' is deprecated, use 'split_fractions'"):
        prepare("toy", tmp_path / "old", num=4, size="16", split="0.5,0.5")
    for name in ("dataset.json", "splits/train.txt", "splits/val.txt"):
        assert (tmp_path / "new" / name).read_bytes() == (tmp_path / "old" / name).read_bytes(), name
    assert json.loads((tmp_path / "new" / "dataset.json").read_text())["source"]["split"] == "0.5,0.5"
    with pytest.raises(TypeError, match="both 'split'"):
        prepare("toy", tmp_path / "both", split="1", split_fractions="1")


@pytest.mark.parametrize(
    ("old", "new", "keyword"), [("--model", "--segmenter", "segmenter"), ("--clip", "--clip-model", "clip_model")]
)
def test_filter_renamed_options(runner, tmp_path, toy_dataset, old, new, keyword):
    by = "segmenter" if keyword == "segmenter" else "clip"
    target = (
        "defectsynth.filtering.filter_dataset"
        if by == "segmenter"
        else "defectsynth.sd_backend.clip_filter.filter_by_clip"
    )
    calls = []
    for spelling in (new, old):
        with (
            mock.patch(target, return_value=toy_dataset) as core,
            mock.patch("defectsynth.commands.filter._print_summary"),
        ):
            argv = [
                "filter",
                "s",
                "--out",
                str(tmp_path / "o"),
                "--by",
                by,
                spelling,
                "net",
                "--keep-fraction",
                "0.5",
                "--no-progress",
            ]
            result = runner.invoke(app, argv, env=WIDE)
        assert result.exit_code == 0, result.output
        assert (f"{old} is deprecated, use {new}" in result.output) == (spelling == old)
        calls.append(core.call_args)
    assert calls[0] == calls[1]
    assert (calls[0].kwargs[keyword] if by == "segmenter" else calls[0].args[2]) == Path("net")
    text = _help(runner, "filter")
    assert new in text and not re.search(re.escape(old) + r"(?![-\w])", text)


def test_filter_old_keywords_warn(tmp_path, toy_dataset):
    with (
        pytest.warns(DeprecationWarning, match="'model' is deprecated, use 'segmenter'"),
        pytest.raises(OptionError, match="exactly one of --real DIR"),
    ):
        filter_dataset(toy_dataset, tmp_path / "o", "segmenter", real=toy_dataset, model=tmp_path, top_k=1)
    with pytest.raises(TypeError, match="both 'model'"):
        filter_dataset(toy_dataset, tmp_path / "o", "segmenter", model=tmp_path, segmenter=tmp_path)
    from defectsynth.sd_backend.clip_filter import filter_by_clip

    with (
        pytest.warns(DeprecationWarning, match="'clip' is deprecated, use 'clip_model'"),
        pytest.raises(OptionError, match="--keep-per-class"),
    ):
        filter_by_clip(toy_dataset, tmp_path / "o", clip=tmp_path)  # mapped, then refused for its missing keep option


def test_old_package_name_still_imports_with_a_warning():
    import importlib
    import sys

    sys.modules.pop("defectsynth.controllable", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old = importlib.import_module("defectsynth.controllable")
    from defectsynth import sd_backend

    assert old.sample_sd is sd_backend.sample_sd and old.filter_by_clip is sd_backend.filter_by_clip
    assert any(
        issubclass(w.category, DeprecationWarning) and "defectsynth.sd_backend" in str(w.message) for w in caught
    )


def test_run_folder_rule_and_run_json_writer_live_in_formats_run(tmp_path):
    """formats.run decides new / resume / refuse, and writes run.json only with the keys readers need."""
    from defectsynth.errors import OutputExistsError
    from defectsynth.formats.run import RUN_FORMAT, previous_run, read_run_json, write_run_json

    assert previous_run(tmp_path / "new", resume=False) is None and previous_run(tmp_path, resume=True) is None
    (tmp_path / "stray.txt").write_text("x")
    with pytest.raises(OutputExistsError, match="not a defectsynth run"):
        previous_run(tmp_path, resume=True)
    run = tmp_path / "run"
    run.mkdir()
    record = {"args": {"cond": "basd"}, "classes": [], "num_classes": 2, "dataset": {}, "size": [32, 32], "layout": {}}
    with pytest.raises(DatasetError, match="'layout' missing or of the wrong type"):
        write_run_json(run, {**record, "layout": None})
    assert not (run / "run.json").exists()
    write_run_json(run, record)
    written = read_run_json(run / "run.json")
    assert list(written) == ["format", *record, "versions"] and written["format"] == RUN_FORMAT
    assert set(written["versions"]) == {"defectsynth", "torch", "diffusers", "accelerate"}
    with pytest.raises(OutputExistsError, match="pass --resume"):
        previous_run(run, resume=False)
    assert previous_run(run, resume=True) == written
