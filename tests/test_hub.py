"""Hub ids where a folder is expected, and `defectsynth push` (defectsynth.hub), against a local
fake Hub and a pre-filled Hugging Face cache: never the network (conftest sets HF_HUB_OFFLINE)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from _hub import FakeHub, cache_repo
from huggingface_hub import _snapshot_download, constants

from defectsynth.cli import app
from defectsynth.diffusion.sampling import sample
from defectsynth.diffusion.training import train
from defectsynth.errors import OptionError
from defectsynth.hub import PIPELINE_FILES, RUN_DOWNLOAD, VARIANT_FILES, is_repo_id, resolve_run
from defectsynth.pipeline import DefectsynthPipeline
from defectsynth.sd_backend.pipeline import check_folder

TINY = {"model": "tiny", "batch_size": 4, "epochs": 1, "preview_every": 0, "progress": False}


@pytest.fixture
def offline_cache(tmp_path, monkeypatch) -> Path:
    """An empty Hugging Face cache, offline, and a working folder where owner/name is no local path."""
    cache = tmp_path / "hf-cache"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    if hasattr(_snapshot_download, "HF_HUB_CACHE"):  # huggingface-hub 0.24 (the floor) copied it at import
        monkeypatch.setattr(_snapshot_download, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    return cache


def _digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.relative_to(folder).as_posix().startswith(".sampling")}  # fmt: skip


def test_a_cached_hub_id_samples_and_finetunes_offline(tiny_run, data16, offline_cache, tmp_path):
    snapshot = cache_repo(offline_cache, "me/toy-run", tiny_run, RUN_DOWNLOAD)
    assert is_repo_id("me/toy-run") and not is_repo_id(str(tiny_run)) and not is_repo_id("a/b/c")
    assert resolve_run("me/toy-run") == snapshot and not (snapshot / "checkpoint-2").exists()
    options = dict(conditions=str(data16), num=2, scheduler="ddim", steps=2, seed=4)
    sample("me/toy-run", out=tmp_path / "from-hub", **options)
    sample(tiny_run, out=tmp_path / "local", **options)
    assert _digest(tmp_path / "from-hub") != {} and {
        k: v for k, v in _digest(tmp_path / "from-hub").items() if k != "dataset.json"
    } == {k: v for k, v in _digest(tmp_path / "local").items() if k != "dataset.json"}
    tuned = train(data16, out=tmp_path / "tuned", finetune="me/toy-run", max_steps=1, **TINY)
    assert json.loads((tuned / "run.json").read_text())["args"]["finetune"] == str(snapshot.resolve())
    pipe = DefectsynthPipeline.from_pretrained("me/toy-run", cache_dir=str(offline_cache), local_files_only=True)
    assert pipe.config.run["cond"] == "basd"


def test_a_hub_id_not_in_the_cache_offline_is_one_line(offline_cache, runner):
    result = runner.invoke(app, ["sample", "me/missing", "--out", "o", "--no-progress"])
    assert (
        result.exit_code == 2
        and (
            "RUN: me/missing is no local folder, and as a Hub id it is not in the Hugging Face cache while "
            "HF_HUB_OFFLINE"
        )
        in result.output
    )
    assert not Path("o").exists()
    for option, marker in (
        ("--base", "model_index.json"),
        ("--adapter", "config.json"),
        ("--controlnet", "config.json"),
        ("--captioner", "config.json"),
    ):
        with pytest.raises(OptionError, match=f"^{option}: org/model is no local folder"):
            check_folder("org/model", option, marker)
    with pytest.raises(OptionError, match="--finetune: me/missing is no local folder"):
        train(Path("data"), out=Path("r"), finetune="me/missing", **TINY)


def test_sd_models_download_configs_and_safetensors_only(tmp_path, monkeypatch):
    hub = FakeHub(tmp_path / "hub").install(monkeypatch)
    monkeypatch.chdir(tmp_path)
    base = hub.repo("org/sdxl")
    for name in (
        "model_index.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "unet/diffusion_pytorch_model.fp16.safetensors",
        "unet/diffusion_pytorch_model.bin",
        "tokenizer/merges.txt",
        "tokenizer/vocab.json",
        "sd_xl_base_1.0.safetensors",
        "pipeline.py",
    ):
        (base / name).parent.mkdir(parents=True, exist_ok=True)
        (base / name).write_text("{}")
    folder = check_folder("org/sdxl", "--base", "model_index.json")
    got = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert got == [
        "model_index.json",
        "tokenizer/merges.txt",
        "tokenizer/vocab.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
    ]
    assert hub.downloads == [
        {"repo_id": "org/sdxl", "allow_patterns": PIPELINE_FILES, "ignore_patterns": VARIANT_FILES}
    ]
    (tmp_path / "models" / "adapter").mkdir(parents=True)
    (tmp_path / "models" / "adapter" / "config.json").write_text("{}")
    assert check_folder("models/adapter", "--adapter", "config.json") == Path(
        "models/adapter"
    )  # a local folder wins over a Hub id
    assert len(hub.downloads) == 1


def test_push_uploads_the_run_without_checkpoints_and_it_samples_back(tiny_run, data16, tmp_path, monkeypatch, runner):
    hub = FakeHub(tmp_path / "hub").install(monkeypatch)
    older = tmp_path / "older"
    shutil.copytree(tiny_run, older)
    (older / "model_index.json").unlink()  # a run trained before model_index.json: push adds it
    result = runner.invoke(app, ["push", str(older), "me/toy", "--private", "--token", "hf_x"])
    assert result.exit_code == 0, result.output
    files = hub.files("me/toy")
    assert {
        "run.json",
        "model_index.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "unet_ema/config.json",
        "scheduler/scheduler_config.json",
        "log.jsonl",
    } <= set(files)
    assert not any(f.startswith("checkpoint-") for f in files) and hub.private["me/toy"] is True
    assert json.loads((hub.repo("me/toy") / "model_index.json").read_text()) == json.loads(
        (tiny_run / "model_index.json").read_text()
    )
    monkeypatch.chdir(tmp_path)
    sample("me/toy", out=tmp_path / "drawn", conditions=str(data16), num=1, scheduler="ddim", steps=2)
    assert hub.downloads[-1]["allow_patterns"] == RUN_DOWNLOAD
    assert isinstance(DefectsynthPipeline.from_pretrained(hub.repo("me/toy")), DefectsynthPipeline)


def test_pipeline_push_to_hub_writes_a_loadable_repository(tiny_run, tmp_path, monkeypatch):
    hub = FakeHub(tmp_path / "hub").install(monkeypatch)
    DefectsynthPipeline.from_pretrained(tiny_run).push_to_hub("me/pipe")
    assert {
        "model_index.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "scheduler/scheduler_config.json",
        "README.md",
    } <= set(hub.files("me/pipe"))
    again = DefectsynthPipeline.from_pretrained(hub.repo("me/pipe"))
    assert again.config.run == DefectsynthPipeline.from_pretrained(tiny_run).config.run


def test_push_refuses_what_is_not_a_run(tmp_path, monkeypatch, runner, tiny_run):
    hub = FakeHub(tmp_path / "hub").install(monkeypatch)
    (tmp_path / "plain").mkdir()
    (tmp_path / "fresh").mkdir()
    shutil.copyfile(tiny_run / "run.json", tmp_path / "fresh" / "run.json")  # a run before its first epoch: no unet/
    cases = [
        ([str(tmp_path / "plain"), "me/x"], "run.json is missing"),
        ([str(tmp_path / "fresh"), "me/x"], "the run has no weights yet"),
        ([str(tiny_run), "no-owner"], "REPO_ID: expected owner/name"),
    ]
    for args, message in cases:
        result = runner.invoke(app, ["push", *args])
        assert result.exit_code == 2 and message in result.output, result.output
    assert not hub.private  # nothing created
    help_text = runner.invoke(app, ["push", "--help"]).output
    assert "--private" in help_text and "--token" in help_text and "defectsynth push runs/wood" in help_text
