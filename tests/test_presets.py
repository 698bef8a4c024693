"""Paper presets (defectsynth.presets) and the switches they need: each preset's settings against
the papers' stated values (cited per line), explicit options winning, what is recorded, and a
tiny end-to-end run per preset (16-32 px, 1 epoch, 2-21 sampling steps, smp without weights)."""

from __future__ import annotations

import json
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch

from defectsynth.cli import app
from defectsynth.data.model import Box
from defectsynth.diffusion import training as training_module
from defectsynth.diffusion.conditioning import EncodedSet, condition_tensor
from defectsynth.diffusion.sampling import sample
from defectsynth.diffusion.training import train
from defectsynth.encoding import basd_maps
from defectsynth.errors import OptionError
from defectsynth.evaluation import evaluate
from defectsynth.filtering import clip_to_boxes
from defectsynth.metrics.sae_ebr import sae_ebr_counts
from defectsynth.presets import NOT_EXPRESSED, PRESETS, PresetRequest, resolve_preset

TINY_TRAIN = {"model": "tiny", "batch_size": 4, "epochs": 1, "preview_every": 0, "progress": False}
TINY_EVAL = {"models": ["unet"], "encoder": "mobilenet_v2", "encoder_weights": None, "size": "32", "batch_size": 4,
             "epochs": 1, "model_kwargs": {"encoder_depth": 3, "decoder_channels": (16, 8, 8)},
             "progress": False}  # fmt: skip

# -- the papers' values, one line per stated setting, with where the paper states it ---------------------
PAPER_VALUES = {
    ("basd-paper", "train"): {
        "cond": "basd",  # 000 §3.2 BASD + C-BASD
        "target": "joint",  # 000 §3.3 x_0 = (I_n, S_n)
        "class_fill": "nearest",  # 000 Algorithm 1, lines 10-12: the nearest box's class everywhere
        "prediction": "epsilon",  # 000 §3.3 eq. (4)
        "mask_prediction": "epsilon",  # 000 §3.3 eq. (4)
        "variance": "fixed",  # 000 §3.3 eq. (3)-(4)
        "epochs": 300,  # 000 §4.1 "We trained for 300 epochs"
        "lr": 1e-5,  # 000 §4.1 "learning rate 1e-5"
        "batch_size": 8,  # 000 §4.1 "batch size 8"
    },
    ("basd-paper", "sample"): {
        "steps": 1000,
        "scheduler": "ddpm",
        "rescale": False,
    },  # 000 §4.1 "1000" denoising iterations in testing
    ("basd-paper", "evaluate"): {
        "models": ["unet"],
        "encoder": "resnet18",  # 000 §4.1 "UNet architecture with a ResNet-18 backbone"
        "per_class_binary": True,  # 000 §4.1 "a single network for each segmentation class"
        "epochs": 100,
        "budget": "epochs",
        "optimizer": "adamw",
        "lr": 1e-5,
        "batch_size": 64,  # 000 §4.1
        "train_split": "val",
        "test_split": "test",  # 000 §4.1 Dataset: 20% split trains the segmenter, §4.3 10% test split
        "mix": ["R=all,S=0", "R=0,S=all", "R=all,S=all"],  # 000 Table 4 rows Real / Synth / Real+Synth
    },
    ("isdm-paper", "train"): {
        "cond": "mask",
        "target": "image",  # 002 §4, 001 §6.2.1 (SDM, semantic image synthesis)
        "variance": "learned",  # 002 §4 L_hybrid
        "weights": "best",  # 002 §4 / 001 §6.2.1 best training-loss checkpoint
        "epochs": 20000,  # 001 §6.2.1 "maximum number of epochs (20000)"
        "size": "256",  # 001 §7.1.2 256x256
        "drop_rate": 0.0,  # 001 §6.2.1 (drop rate only when finetuning)
    },
    ("isdm-paper", "sample"): {
        "steps": 300,
        "rescale": True,  # 002 §4 "T = 300" with timestep rescaling
        "guidance": 1.5,  # 001 §6.2.1 "a guidance scale of s = 1.5 was applied"
        "force_guidance": True,  # 001 §6.2.1 / Fig. 6.4: sampling always combines y and the null label
        "num": 1000,  # 002 §5 "1000 generated image-mask pairs"
    },
    ("isdm-paper", "evaluate"): {
        "models": ["unetplusplus", "fpn", "deeplabv3plus"],
        "encoder": "resnet34",
        "encoder_weights": "imagenet",  # 002 §4
        "epochs": 50,
        "size": "256",
        "augment": "none",  # 002 §4
        "repeats": 3,  # 002 §5 "repeated three times"
    },
    ("all-latent-thesis", "train"): {
        "epochs": 1000,
        "variance": "fixed",
        "prediction": "epsilon",
        "size": "256",
    },  # 001 §6.1.1-6.1.2, §7.1.2
    ("all-latent-thesis", "sample"): {
        "scheduler": "ddim",
        "steps": 250,
        "num": 2000,
    },  # 001 §6.1.2 "DDIM ... 250 time steps", 2000 pairs
    ("voc-paper", "sample_sd"): {
        "steps": 30,
        "prior": "lineart",
        "blend": "0.7,0.9",
    },  # 003 §4.1.2 (30 steps, Line-Art), §4.3.4 Table 7
    ("voc-paper", "evaluate"): {
        "size": "512",
        "budget": "steps",
        "steps": 30000,  # 003 §4.1.2 "512 x 512 with 30k steps"
        "encoder": "resnet50",  # 003 §4.3 "DeepLabV3+ model, backbone Resnet50"
        "test_split": "val",  # 003 §4.1.1 / Table 1: mIoU on the val set
        "optimizer": "sgd",
        "lr": 0.01,
        "lr_schedule": "poly",  # 003 §4.1.2 "SGD optimizer with standard settings in MMSegmentation"
    },
}


@pytest.mark.parametrize("key", list(PAPER_VALUES), ids=lambda k: f"{k[0]}-{k[1]}")
def test_preset_settings_are_the_papers_values(key):
    name, command = key
    settings = PRESETS[name][command]
    for option, value in PAPER_VALUES[key].items():
        assert settings[option].value == value, (name, command, option)
        assert not settings[option].open, (name, command, option)  # stated by the paper, not our choice
    paper = {"basd-paper": "000", "isdm-paper": ("001", "002"), "all-latent-thesis": "001", "voc-paper": "003"}[name]
    for option, setting in settings.items():
        if setting.open:
            assert setting.note, (
                option
            )  # our choices say why (source: "not stated", or the paper's value we cannot express)
        else:
            assert setting.source.startswith(paper) and any(w in setting.source for w in ("§", "Table", "Algorithm")), (
                option,
                setting.source,
            )


def test_every_preset_names_what_it_cannot_express():
    assert set(NOT_EXPRESSED) == set(PRESETS) and all(NOT_EXPRESSED.values())


def test_explicit_options_win_and_unknown_presets_fail():
    record = resolve_preset("basd-paper", "train", {"lr", "epochs"})
    assert "lr" not in record.values and "epochs" not in record.values and record.overridden == ["epochs", "lr"]
    assert record.values["class_fill"] == "nearest" and record.to_json()["applied"]["model"]["open"] is True
    finetune = resolve_preset(
        "isdm-paper", "train", {"drop_rate"}, finetune=True
    )  # the run's cond/target/model/size stay
    assert (
        finetune.inherited == ["cond", "target", "model", "size"]
        and "model" not in finetune.values
        and "drop_rate" not in finetune.values
    )
    with pytest.raises(OptionError, match="unknown preset 'nope'"):
        resolve_preset("nope", "train", ())
    with pytest.raises(OptionError, match="voc-paper: the paper has no settings for train"):
        resolve_preset("voc-paper", "train", ())


def test_cli_passes_only_typed_options_as_given(runner, tmp_path):
    with mock.patch("defectsynth.diffusion.training.train", return_value=tmp_path) as core:
        result = runner.invoke(
            app,
            ["train", "data/toy", "--out", "runs/x", "--preset", "basd-paper", "--lr", "1e-3", "--no-progress"],
            env={"COLUMNS": "200"},
        )
    assert result.exit_code == 0, result.output
    request = core.call_args.kwargs["preset"]
    assert isinstance(request, PresetRequest) and request.name == "basd-paper"
    assert (
        {"lr", "out", "progress"} <= request.given and "epochs" not in request.given and "preset" not in request.given
    )
    assert "--class-fill" in result.output and "Algorithm 1" in result.output and "given explicitly" in result.output
    result = runner.invoke(app, ["train", "data/toy", "--out", "runs/x", "--preset", "nope"])
    assert result.exit_code == 2 and "unknown preset 'nope'" in result.output


# -- tiny end-to-end runs per preset --------------------------------------------------------------
def _args(run: Path) -> dict:
    return json.loads((run / "run.json").read_text())["args"]


def test_basd_paper_train_sample_end_to_end(data16, tmp_path, one_thread):
    run = train(data16, out=tmp_path / "run", preset="basd-paper", size="16", **TINY_TRAIN)
    args = _args(run)
    assert (args["cond"], args["class_fill"], args["flip"], args["weights"], args["ema"], args["lr"]) == (
        "basd",
        "nearest",
        False,
        "final",
        False,
        1e-5,
    )
    assert (args["prediction"], args["mask_prediction"], args["self_cond"], args["max_grad_norm"]) == (
        "epsilon",
        "epsilon",
        False,
        0.0,
    )
    assert args["epochs"] == 1 and args["size"] == "16x16"  # given explicitly: not the preset's 300 / 352x128
    assert args["preset"]["name"] == "basd-paper" and {"epochs", "size", "model", "batch_size"} <= set(
        args["preset"]["overridden"]
    )
    assert args["preset"]["applied"]["lr"] == {"value": 1e-5, "source": "000 §4.1 (AdamW)", "open": False}
    assert (run / "unet").is_dir() and not (run / "unet_ema").exists()
    manifest = sample(run, out=tmp_path / "s", preset="basd-paper", steps=2, num=2)
    source = manifest.source
    assert (source["steps"], source["sampler"], source["ema"], source["guidance"]) == (2, "ddpm", False, 1.0)
    assert source["preset"]["name"] == "basd-paper" and source["preset"]["overridden"] == ["steps"]


@pytest.mark.slow
def test_isdm_paper_train_sample_end_to_end(data16, tmp_path, one_thread):
    run = train(data16, out=tmp_path / "run", preset="isdm-paper", size="16", **TINY_TRAIN)
    args = _args(run)
    assert (args["cond"], args["target"], args["variance"], args["weights"], args["ema_decay"], args["dropout"]) == (
        "mask",
        "image",
        "learned",
        "best",
        0.9999,
        0.0,
    )
    assert json.loads((run / "unet" / "config.json").read_text())["dropout"] == 0.0
    with pytest.raises(OptionError, match="--force-guidance"):
        sample(run, out=tmp_path / "refused", guidance=1.5, steps=2, rescale=False)
    manifest = sample(
        run, out=tmp_path / "s", preset="isdm-paper", steps=21, num=2
    )  # rescaling needs more than 20 steps
    source = manifest.source
    assert (source["guidance"], source["rescale"], source["force_guidance"], source["num"]) == (1.5, True, True, 2)


def test_all_latent_thesis_train_sample_end_to_end(data16, tmp_path, one_thread):
    run = train(
        data16, out=tmp_path / "masks", preset="all-latent-thesis", cond="none", target="mask", size="16", **TINY_TRAIN
    )
    args = _args(run)
    assert (args["prediction"], args["variance"], args["self_cond"], args["mask_loss_weight"]) == (
        "epsilon",
        "fixed",
        False,
        1.0,
    )
    manifest = sample(run, out=tmp_path / "s", preset="all-latent-thesis", steps=2, num=3)
    assert (manifest.source["sampler"], manifest.source["steps"], manifest.source["num"]) == ("ddim", 2, 3)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["basd-paper", "isdm-paper", "voc-paper"])
def test_evaluate_presets_end_to_end(name, toy_dataset, synthetic, tmp_path, one_thread):
    extra = {"steps": 2} if name == "voc-paper" else {}
    report = evaluate(
        toy_dataset,
        tmp_path / "r",
        synthetic=[synthetic],
        preset=name,
        repeats=1,
        mix=["R=all,S=all"],
        **TINY_EVAL,
        **extra,
    )
    protocol, preset = report["config"]["protocol"], report["config"]["preset"]
    expected = {
        "basd-paper": ("val", "test", "constant", "adamw", True),
        "isdm-paper": ("train", "test", "step", "adam", False),
        "voc-paper": ("train", "val", "poly", "sgd", False),
    }[name]
    assert (
        protocol["train_split"],
        protocol["test_split"],
        protocol["lr_schedule"],
        protocol["optimizer"],
        protocol["per_class_binary"],
    ) == expected
    assert preset["name"] == name and "models" in preset["overridden"]
    assert json.loads((tmp_path / "r" / "report.json").read_text())["config"]["preset"] == preset


def test_voc_paper_fills_the_sample_sd_settings(tmp_path):
    """The sd-adapter core's options (its own end-to-end tests need lineart weights this test does not have)."""
    import inspect

    from defectsynth.presets import applies_preset
    from defectsynth.sd_backend.generate import sample_sd

    def core(conditions, out, base, **kwargs):
        return kwargs

    core.__signature__ = inspect.signature(sample_sd)  # the real signature decides which options a call gives
    seen = applies_preset("sample_sd")(core)("data:train", tmp_path / "o", "base", guidance=5.0, preset="voc-paper")
    assert (seen["steps"], seen["prior"], seen["blend"], seen["prompt_template"], seen["guidance"]) == (
        30,
        "lineart",
        "0.7,0.9",
        "{caption}; {classes}",
        5.0,
    )
    assert seen["preset"]["overridden"] == ["guidance"] and seen["preset"]["applied"]["blend"]["source"].startswith(
        "003 §4.3.4, Table 7"
    )


# -- the switches ---------------------------------------------------------------------------------
def test_class_fill_nearest_reaches_training_and_sampling():
    boxes = [Box(1, 2, 2, 6, 6), Box(2, 10, 10, 14, 14)]
    basd, nearest = basd_maps(
        *[np.array(x) for x in ([[2, 2, 6, 6], [10, 10, 14, 14]], [1, 2])], 16, 16, class_fill="nearest"
    )
    tensor = condition_tensor(boxes, (16, 16), "basd", 3, "nearest")
    assert (
        torch.equal(tensor[0], torch.from_numpy(basd)) and (nearest > 0).all()
    )  # Algorithm 1: every pixel has a class
    sample_stub = mock.Mock(
        size=(16, 16), boxes=boxes, mask=np.zeros((16, 16), np.uint8), image=np.zeros((16, 16, 3), np.uint8), stem="a"
    )
    data = EncodedSet([sample_stub], "basd", "joint", 3, "rgb", "nearest")
    encoded = data.conditions(torch.tensor([0]))[0]  # the distance map is kept as float16
    assert torch.allclose(encoded[0], tensor[0], atol=1e-3) and torch.equal(encoded[1:], tensor[1:])
    assert not torch.equal(
        tensor, condition_tensor(boxes, (16, 16), "basd", 3)
    )  # inside-only differs outside the boxes


@pytest.mark.slow
def test_no_flip_and_final_weights(data16, tmp_path, monkeypatch, one_thread):
    monkeypatch.setattr(training_module, "flip", mock.Mock(side_effect=AssertionError("flipped")))
    saves = []
    real_save = training_module.save_best
    monkeypatch.setattr(training_module, "save_best", lambda *a: saves.append(1) or real_save(*a))
    train(data16, out=tmp_path / "final", flip=False, weights="final", **dict(TINY_TRAIN, epochs=3, batch_size=2))
    assert len(saves) == 1  # once, after the last epoch
    log = [json.loads(x) for x in (tmp_path / "final" / "log.jsonl").read_text().splitlines()]
    saves.clear()
    train(data16, out=tmp_path / "best", flip=False, **dict(TINY_TRAIN, epochs=3, batch_size=2))
    assert len(saves) == sum(x["improved"] for x in log)  # best: at every improved epoch (same seed, same losses)
    with pytest.raises(OptionError, match="--class-fill nearest: only --cond basd"):
        train(data16, out=tmp_path / "x", cond="boxmask", class_fill="nearest", **TINY_TRAIN)


def test_sae_ebr_and_clip_labels_class_aware_and_agnostic():
    mask = np.zeros((8, 8), np.uint8)
    mask[1:3, 1:3] = 1  # class 1 inside the class-2 box only
    xyxy, classes = np.array([[0, 0, 4, 4], [5, 5, 8, 8]]), np.array([2, 1])
    aware = sae_ebr_counts(mask, xyxy, classes, 3)
    agnostic = sae_ebr_counts(mask, xyxy, classes, 3, class_agnostic=True)
    assert aware.sae()[1] == 1.0 and aware.ebr()[1] == 1.0  # class-aware: wrong box, both boxes empty of their class
    assert (
        agnostic.sae()[1] == 0.0 and agnostic.ebr()[1] == 0.5
    )  # paper eqs. 5-6: inside a box; only the second box is empty
    boxes = [Box(2, 0, 0, 4, 4), Box(1, 5, 5, 8, 8)]
    assert clip_to_boxes(mask, boxes).sum() == 0 and (clip_to_boxes(mask, boxes, class_agnostic=True) == mask).all()


@pytest.mark.slow
def test_evaluate_lr_schedule_and_split_checks(toy_dataset, tmp_path):
    from defectsynth.evaluation.data import PairCache
    from defectsynth.evaluation.training import TrainConfig, train_model

    cache = PairCache((32, 32))
    from defectsynth.data import Dataset

    ds = Dataset(toy_dataset)
    pairs = cache.pairs(ds, ds.split("train")[:8])
    kw = dict(encoder="mobilenet_v2", encoder_weights=None, epochs=2, batch_size=4, budget="epochs")
    poly = [1e-4 + (1e-2 - 1e-4) * (1 - 2 * k / 4) ** 0.9 for k in range(2)]  # 2 steps a round, MMSegmentation's PolyLR
    for schedule, optimizer, lr, lrs in (
        ("step", "adam", 1e-4, [1e-4, 1e-5]),
        ("constant", "adamw", 1e-4, [1e-4] * 2),
        ("poly", "sgd", 1e-2, poly),
    ):
        config = TrainConfig(
            **kw,
            model_kwargs=tuple(TINY_EVAL["model_kwargs"].items()),
            lr=lr,
            optimizer=optimizer,
            lr_schedule=schedule,
        )
        _, info = train_model("unet", ds.manifest.num_classes, pairs, pairs[:2], config, 0, "cpu")
        assert [h["lr"] for h in info["history"]] == pytest.approx(lrs)  # the rate at the start of each round
    with pytest.raises(OptionError, match="--train-split and --test-split are both 'test'"):
        evaluate(toy_dataset, tmp_path / "r", train_split="test", **TINY_EVAL)


# -- docs -----------------------------------------------------------------------------------------
DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.mark.parametrize("name", list(PRESETS))
def test_docs_page_lists_every_setting_with_its_value(name):
    from defectsynth.presets import _show

    text = (DOCS / "presets" / f"{name}.md").read_text(encoding="utf-8")
    for settings in PRESETS[name].values():
        for option, setting in settings.items():
            row = f"| `--{option.replace('_', '-')}` | `{_show(setting.value)}` |"
            assert row in text, (name, row)
            assert ("**our choice**" in text.split(row, 1)[1].split("\n", 1)[0]) == setting.open, (name, option)
    for line in NOT_EXPRESSED[name]:
        assert line in text, (name, line)


def test_reproduce_page_covers_every_results_table():
    text = (DOCS / "reproduce.md").read_text(encoding="utf-8")
    for table in (
        "Table 1",
        "Table 2",
        "Table 3",
        "Table 4",
        "Table 7.1",
        "Table 7.2",
        "Table 7.3",
        "Table 7.4",
        "Table 5",
        "Table 6",
        "Table 7:",
    ):
        assert f"| {table}" in text, table
