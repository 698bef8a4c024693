"""``demo``: the whole box-guided pipeline on built-in toy data, in minutes on a CPU.

Folder written::

    <out>/
      demo.json             what was run, with the settings of each stage
      data/                 the toy dataset (prepare toy)
      run/                  the trained box-guided model (train --cond basd --target joint)
      synthetic/            samples for the boxes of the toy train split (sample)
      metrics.json          SAE and EBR of the synthetic masks against their boxes (metrics)
      filtered/             synthetic labels outside their class's boxes cleared (filter --by boxes --clip-labels)
      plan.json             class-balancing generation plan for the real train split (balance --plan-out)
      evaluate/             real vs real + synthetic, a U-Net (ResNet-18, no pretrained weights) on the real test split
      verdict.json          the measured mIoU difference of R=all,S=R against R=all,S=0, per repeat and mean ± std
      previews/real.png     real train images: image | mask overlay | boxes
      previews/synthetic.png  the synthetic samples for the same boxes, same columns

The synthetic data is conditioned on the boxes of the *train* split, as in the BASD paper (boxes of
the segmentation training split), so the test split stays unseen by every stage.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from defectsynth.data import Dataset
from defectsynth.data.files import write_image, write_json
from defectsynth.errors import OutputExistsError
from defectsynth.formats.dataset import DATASET_LAYOUT, check_replaceable, nested
from defectsynth.locks import writes_output

# Settings per variant. The full demo trains the `tiny` network for 2000 steps (about 4 minutes on 2
# CPU cores), v prediction for the image channels (the mask bits stay x_0), lr 2e-3: in the time
# `small` takes for 800 steps, this draws grainy surfaces in two colours where `small` with the RGB
# default (x_0) drew flat ones (docs/recipe-ablation.md, "The demo's texture, third round").
SETTINGS: dict[str, dict[str, Any]] = {
    "full": {
        "prepare": {"num": 240, "size": "32"},
        "train": {
            "model": "tiny",
            "prediction": "v",
            "batch_size": 16,
            "epochs": 1000,
            "max_steps": 2000,
            "lr": 2e-3,
            "checkpoint_every": 1000,
            "preview_every": 20,
        },
        "sample": {"scheduler": "ddim", "steps": 50, "batch_size": 32},
        "evaluate": {"epochs": 15, "batch_size": 16, "repeats": 2, "budget": "steps"},
    },
    "quick": {
        "prepare": {"num": 12, "size": "16"},
        "train": {
            "model": "tiny",
            "batch_size": 4,
            "epochs": 1,
            "max_steps": 2,
            "checkpoint_every": 2,
            "preview_every": 1,
        },
        "sample": {"scheduler": "ddim", "steps": 2, "batch_size": 8},
        "evaluate": {
            "epochs": 1,
            "batch_size": 4,
            "repeats": 2,
            "budget": "steps",
            "model_kwargs": {"encoder_depth": 3, "decoder_channels": [16, 8, 8]},
        },
    },
}
PREVIEW_ROWS = 8
# The demo's benchmark: a real encoder trained from scratch (no download), the real-only baseline against
# as many synthetic pairs added, two repeats, every mix trained for the same optimiser steps (--budget steps).
# The quick variant's 16 px images take a shallower network (its SETTINGS add model_kwargs).
BASELINE, WITH_SYNTHETIC = "R=all,S=0", "R=all,S=R"
EVALUATE_MODEL = {
    "models": ["unet"],
    "encoder": "resnet18",
    "encoder_weights": None,
    "lr": 1e-3,
    "loss": "dice+ce",
    "mix": [BASELINE, WITH_SYNTHETIC],
}


@writes_output("demo", "out")
def demo(
    out: str | Path = "defectsynth-demo",
    *,
    quick: bool = False,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Run every stage on toy data: prepare, train (BASD, joint), sample the train boxes, SAE/EBR,
    filter, a balancing plan, a small evaluate, and previews.

    Returns the folders and files written (``data``, ``run``, ``synthetic``, ``filtered``, ``plan``,
    ``evaluate``, ``previews``) and the results: ``metrics`` (SAE/EBR dict as ``compute_metrics``),
    ``balance`` (the :class:`~defectsynth.balancing.BalancePlan`), ``report`` (the evaluate report dict) and
    ``verdict`` (:func:`verdict`, also written to ``verdict.json``).
    """
    from defectsynth.balancing import plan_balance
    from defectsynth.data.prepare import prepare
    from defectsynth.diffusion.sampling import sample
    from defectsynth.diffusion.training import train
    from defectsynth.evaluation import evaluate
    from defectsynth.filtering import filter_dataset
    from defectsynth.metrics import compute_metrics

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise OutputExistsError("output folder exists: choose another --out or pass --overwrite", out)
        if not (out / "demo.json").is_file():
            raise OutputExistsError("--overwrite only replaces a demo folder, and this one has no demo.json", out)
        check_replaceable(out, demo_layout(), "demo folder")
        shutil.rmtree(out)
    settings = SETTINGS["quick" if quick else "full"]
    evaluate_settings = {**EVALUATE_MODEL, **settings["evaluate"]}
    out.mkdir(parents=True, exist_ok=True)
    write_json(
        out / "demo.json", {"quick": quick, "seed": seed, "settings": {**settings, "evaluate": evaluate_settings}}
    )
    prepare("toy", out / "data", seed=seed, progress=progress, **settings["prepare"])
    train(out / "data", out=out / "run", cond="basd", target="joint", seed=seed, progress=progress, **settings["train"])
    sample(
        out / "run",
        out=out / "synthetic",
        conditions=f"{out / 'data'}:train",
        seed=seed,
        progress=progress,
        **settings["sample"],
    )
    write_previews(out / "data", out / "synthetic", out / "previews")
    metrics = compute_metrics(["sae", "ebr"], synthetic=out / "synthetic", progress=progress)
    write_json(out / "metrics.json", metrics)
    filter_dataset(out / "synthetic", out / "filtered", by="boxes", clip_labels=True, progress=progress)
    plan = plan_balance(out / "data", "auto", out / "plan.json", "train", progress)
    size = settings["prepare"]["size"]
    report = evaluate(
        out / "data",
        out / "evaluate",
        synthetic=[out / "filtered"],
        size=size,
        seed=seed,
        progress=progress,
        **evaluate_settings,
    )
    answer = verdict(report)
    write_json(out / "verdict.json", answer)
    names = ("data", "run", "synthetic", "filtered", "plan.json", "evaluate", "previews")
    return {
        **{name.split(".")[0]: out / name for name in names},
        "metrics": metrics,
        "balance": plan,
        "report": report,
        "verdict": answer,
    }


def verdict(report: dict[str, Any]) -> dict[str, Any]:
    """What adding the synthetic data did: mIoU of ``R=all,S=R`` minus ``R=all,S=0``, per repeat.

    The two mixes of one repeat start from the same weights and batch order (evaluate's common random
    numbers), so the differences are paired by repeat. Returns ``{"budget", "repeats", "baseline",
    "with_synthetic": {"miou": per repeat, "mean", "std"}, "difference": {"per_repeat", "mean", "std",
    "relative_pct"}, "direction": "gain" | "loss" | "no change", "every_repeat": whether every repeat
    moved in that direction}`` (std: over repeats, ddof 0, as the report's).
    """
    from defectsynth.evaluation.report import mean_std

    per_mix = {
        mix: {c["repeat"]: c["scores"]["miou"] for c in report["cells"] if c["mix"] == mix}
        for mix in (BASELINE, WITH_SYNTHETIC)
    }
    repeats = sorted(per_mix[BASELINE])
    base, mixed = ([per_mix[mix][r] for r in repeats] for mix in (BASELINE, WITH_SYNTHETIC))
    diffs = [m - b for b, m in zip(base, mixed)]
    mean, std = mean_std(diffs)
    base_mean = mean_std(base)[0]
    direction = "gain" if mean > 0 else "loss" if mean < 0 else "no change"
    sign = {"gain": 1, "loss": -1, "no change": 0}[direction]
    return {
        "budget": report["budget"],
        "repeats": len(repeats),
        **{
            name: {"mix": mix, "miou": values, **dict(zip(("mean", "std"), mean_std(values)))}
            for name, mix, values in (("baseline", BASELINE, base), ("with_synthetic", WITH_SYNTHETIC, mixed))
        },
        "difference": {
            "per_repeat": diffs,
            "mean": mean,
            "std": std,
            "relative_pct": 100.0 * mean / base_mean if base_mean else None,
        },
        "direction": direction,
        "every_repeat": all((d > 0) - (d < 0) == sign for d in diffs),
    }


def demo_layout() -> tuple[str, ...]:
    """Every file the demo writes (formats.dataset.in_layout patterns): what --overwrite may replace."""
    from defectsynth.formats.report import REPORT_LAYOUT
    from defectsynth.formats.run import RUN_LAYOUT

    folders = {
        "data": DATASET_LAYOUT,
        "run": RUN_LAYOUT,
        "synthetic": DATASET_LAYOUT,
        "filtered": DATASET_LAYOUT,
        "evaluate": REPORT_LAYOUT,
    }
    return (
        "demo.json",
        "metrics.json",
        "plan.json",
        "previews/*.png",
        *(p for name, layout in folders.items() for p in nested(name, layout)),
    )


def write_previews(real: Path, synthetic: Path, folder: Path) -> None:
    """``real.png`` and ``synthetic.png``: the first test conditions and their samples, row by row."""
    from defectsynth.data.colors import class_palette
    from defectsynth.diffusion.previews import preview_grid, preview_row, viewing_scale

    synth = Dataset(synthetic)
    real_ds = Dataset(real)
    palette = class_palette(real_ds.manifest.classes)
    stems = synth.stems[:PREVIEW_ROWS]
    condition_of = synth.manifest.source.get("condition_of", {})
    for name, ds, names in (("synthetic", synth, stems), ("real", real_ds, [condition_of.get(s, s) for s in stems])):
        samples = [ds.read(s) for s in names]
        rows = [preview_row(s.image, s.mask, s.boxes, palette) for s in samples]
        write_image(folder / f"{name}.png", preview_grid(rows, viewing_scale(samples[0].size[0])))
