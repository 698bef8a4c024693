"""Recipes on real data: train each named recipe on one dataset with checkpoints, and turn any checkpoint
into a run folder that ``defectsynth sample`` (and ``benchmarks/fidelity.py --run``) reads.

Recipes are ``train()`` options on top of a shared base (``--base JSON``); every recipe trains with the
same seed, data order and noise, one thread per worker (``--threads``), ``--jobs`` workers at a time,
so the training CPU seconds (``trainer.json`` ``cpu_seconds``) of the checkpoints are comparable.

    python benchmarks/recipe_runs.py --data DATA --recipes x0,v/x0 --steps 800 --every 200 --out DIR
    python benchmarks/recipe_runs.py --view DIR/run-v_x0 --step 400 --to DIR/view-v_x0-400

``--data`` is a prepared dataset folder; ``--crackforest PATH`` (or ``DEFECTSYNTH_CRACKFOREST``)
prepares ``../shared/data/crackforest`` at ``--size`` first, and the script exits 0 with a message
when neither is there.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from _results import recipe_names, run_workers
from fidelity import checkpoint_run

# name -> train() options on top of BASE; "x0" = the recipe of issue 12 (the default before this study)
RECIPES: dict[str, dict] = {
    "plain": {"prediction": "epsilon", "mask_prediction": "epsilon", "mask_loss_weight": 1.0, "self_cond": False},
    "x0": {"prediction": "sample", "mask_loss_weight": 4.0, "self_cond": True},
    "v/x0": {"prediction": "v", "mask_prediction": "sample", "mask_loss_weight": 4.0, "self_cond": True},
    "eps/x0": {"prediction": "epsilon", "mask_prediction": "sample", "mask_loss_weight": 4.0, "self_cond": True},
    "eps/x0+grey": {
        "prediction": "epsilon",
        "mask_prediction": "sample",
        "mask_loss_weight": 4.0,
        "self_cond": True,
        "channels": "grey",
    },
    "v/x0+grey": {
        "prediction": "v",
        "mask_prediction": "sample",
        "mask_loss_weight": 4.0,
        "self_cond": True,
        "channels": "grey",
    },
    "v/x0+minsnr5": {
        "prediction": "v",
        "mask_prediction": "sample",
        "mask_loss_weight": 4.0,
        "self_cond": True,
        "min_snr_gamma": 5.0,
    },
    "v/x0+maskw1": {"prediction": "v", "mask_prediction": "sample", "mask_loss_weight": 1.0, "self_cond": True},
    "v": {"prediction": "v", "mask_prediction": "v", "mask_loss_weight": 4.0, "self_cond": True},
    "v/x0+base": {
        "prediction": "v",
        "mask_prediction": "sample",
        "mask_loss_weight": 4.0,
        "self_cond": True,
        "model": "base",
    },
    "v/x0+learned": {
        "prediction": "v",
        "mask_prediction": "sample",
        "mask_loss_weight": 4.0,
        "self_cond": True,
        "variance": "learned",
    },
}
BASE = {
    "cond": "basd",
    "target": "joint",
    "model": "small",
    "batch_size": 8,
    "lr": 5e-4,
    "epochs": 10**6,
    "preview_every": 0,
    "split": "train",
    "checkpoints_total_limit": None,
    "channels": "rgb",
}
CRACKFOREST = Path(__file__).resolve().parents[2] / "shared" / "data" / "crackforest"


def folder_name(recipe: str) -> str:
    return "run-" + recipe.replace("/", "_").replace("+", "-")


def worker(a: argparse.Namespace) -> None:
    import torch

    import defectsynth

    torch.set_num_threads(a.threads)
    run = a.out / folder_name(a.only)
    options = {**BASE, **json.loads(a.base), **RECIPES[a.only]}
    started = time.time()
    defectsynth.train(
        a.data, out=run, seed=a.seed, max_steps=a.steps, checkpoint_every=a.every, resume=run.exists(), **options
    )
    print(
        json.dumps({"recipe": a.only, "wall_seconds": round(time.time() - started, 1), "options": options}), flush=True
    )


def data_folder(a: argparse.Namespace) -> Path | None:
    if a.data is not None:
        return a.data
    source = Path(a.crackforest or os.environ.get("DEFECTSYNTH_CRACKFOREST") or CRACKFOREST)
    if not (source / "images").is_dir():
        return None
    import defectsynth

    folder = a.out / f"crackforest-{a.size}"
    if not (folder / "dataset.json").is_file():
        defectsynth.prepare("masks", folder, source=source, classes="crack", size=a.size)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="A prepared dataset folder.")
    parser.add_argument(
        "--crackforest",
        help=(
            "The crackforest folder (images/, masks/); default: $DEFECTSYNTH_CRACKFOREST or ../shared/data/crackforest."
        ),
    )
    parser.add_argument("--size", default="96x64", help="Size for the crackforest import.")
    parser.add_argument("--recipes", default="x0,v/x0", help=f"Comma-separated, from: {', '.join(RECIPES)}")
    parser.add_argument(
        "--base", default="{}", help="JSON train() options that override the shared base for every recipe."
    )
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--every", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("recipe-runs"))
    parser.add_argument(
        "--view", type=Path, help="A run folder of this script: write a checkpoint view (with --step, --to)."
    )
    parser.add_argument("--step", type=int)
    parser.add_argument("--to", type=Path)
    parser.add_argument("--only", help=argparse.SUPPRESS)
    a = parser.parse_args()
    if a.view:  # the EMA weights of one checkpoint as a run folder (fidelity.checkpoint_run)
        print(checkpoint_run(a.view, a.view / f"checkpoint-{a.step}", a.to))
        return
    a.out.mkdir(parents=True, exist_ok=True)
    data = data_folder(a)
    if data is None:
        print("recipe_runs: no dataset (--data, or crackforest at --crackforest / $DEFECTSYNTH_CRACKFOREST): skipped")
        return
    a.data = data
    if a.only:
        return worker(a)
    recipes = recipe_names(parser, a.recipes, RECIPES)
    argv = [*sys.argv[1:], "--data", str(data)]
    run_workers(__file__, [([*argv, "--only", r], a.out / f"{folder_name(r)}.log") for r in recipes], a.jobs)
    for recipe in recipes:
        run = a.out / folder_name(recipe)
        for ck in sorted(run.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1])):
            t = json.loads((ck / "trainer.json").read_text())
            print(
                f"{recipe:<16} step {t['step']:5d}  train CPU s {t['cpu_seconds']:8.0f}  loss "
                f"{t['loss_sum'] / max(1, t['loss_count']):.4f}"
            )


if __name__ == "__main__":
    main()
