"""Time to quality: how many training steps and CPU seconds the box-guided model needs for trustworthy masks.

Trains ``train --cond basd --target joint`` on toy data (fixed seed) once per recipe, keeping a
checkpoint every ``--every`` steps; each checkpoint (EMA and plain weights) then samples the boxes of
the toy test split and scores SAE (generated defect pixels outside their boxes) and EBR (boxes left
empty). Prints the curve per recipe and the first checkpoint with SAE <= 25% and EBR <= 10%.

Seconds are process CPU seconds of the training steps (``trainer.json`` ``cpu_seconds``), with
``torch.set_num_threads(--threads)``, so runs that share a busy machine stay comparable; recipes run
as parallel worker processes (``--jobs``). Sampling cost is reported separately per evaluation.

    python benchmarks/time_to_quality.py [--recipes plain,sample,...] [--steps 900] [--every 150]
        [--samplers ddpm:25] [--size 32] [--images 240] [--jobs 4] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _results import add_json_option, recipe_names, run_workers, write_results

from defectsynth.diffusion.training import PLAIN_RECIPE as PLAIN

# name -> train() options on top of the plain recipe (the BASD paper's code: epsilon, uniform MSE);
# ``default`` is train()'s current default (x_0 prediction, self-conditioning, mask weight 4).
CHANGES: dict[str, dict] = {
    "plain": {},
    "sample": {"prediction": "sample"},
    "v": {"prediction": "v"},
    "selfcond": {"self_cond": True},
    "sample+selfcond": {"prediction": "sample", "self_cond": True},
    "maskw4": {"mask_loss_weight": 4.0},
    "sample+maskw4": {"prediction": "sample", "mask_loss_weight": 4.0},
    "minsnr5": {"min_snr_gamma": 5.0},
    "cosine": {"lr_warmup_steps": 100, "lr_schedule": "cosine"},
    "sample+selfcond+maskw4": {"prediction": "sample", "self_cond": True, "mask_loss_weight": 4.0},
    "default+minsnr5": {"prediction": "sample", "self_cond": True, "mask_loss_weight": 4.0, "min_snr_gamma": 5.0},
    "default+cosine": {
        "prediction": "sample",
        "self_cond": True,
        "mask_loss_weight": 4.0,
        "lr_warmup_steps": 100,
        "lr_schedule": "cosine",
    },
    "v+selfcond+minsnr5": {"prediction": "v", "self_cond": True, "min_snr_gamma": 5.0},
    "default+bf16": {"prediction": "sample", "self_cond": True, "mask_loss_weight": 4.0, "mixed_precision": "bf16"},
    # per-channel-group targets: the image channels by v or epsilon, the mask bits by x_0
    "v/x0+selfcond+maskw4": {
        "prediction": "v",
        "mask_prediction": "sample",
        "self_cond": True,
        "mask_loss_weight": 4.0,
    },
    "eps/x0+selfcond+maskw4": {
        "prediction": "epsilon",
        "mask_prediction": "sample",
        "self_cond": True,
        "mask_loss_weight": 4.0,
    },
}
# float32 unless a recipe says otherwise, whatever train()'s --mixed-precision auto picks on this machine
# a recipe that names one prediction uses it for every channel (the mask bits too)
RECIPES: dict[str, dict] = {
    name: {"mixed_precision": "no", **PLAIN, "mask_prediction": change.get("prediction", PLAIN["prediction"]), **change}
    for name, change in CHANGES.items()
}
BASE = dict(
    cond="basd",
    target="joint",
    batch_size=16,
    lr=5e-4,
    epochs=10**6,
    preview_every=0,
    split="train",
    checkpoints_total_limit=None,
)
SAE_TARGET, EBR_TARGET = 0.25, 0.10


def test_conditions(data: Path, size: tuple[int, int]):
    """(stems, (N, C_c, H, W) BASD conditions, boxes) of the toy test split at the run's size."""
    from defectsynth.data import Dataset
    from defectsynth.data.resize import resize_sample
    from defectsynth.diffusion.conditioning import condition_tensor

    ds = Dataset(data)
    stems = ds.split("test")
    boxes = [resize_sample(ds.read(s), size).boxes for s in stems]
    cond = torch.stack([condition_tensor(b, size, "basd", ds.manifest.num_classes) for b in boxes])
    return stems, cond, boxes


def score(run: Path, weights: Path, data: Path, sampler: str, steps: int) -> dict:
    """SAE, EBR and sampling CPU seconds of ``weights`` (a safetensors file of the run's UNet) on the test boxes."""
    from diffusers import UNet2DModel
    from safetensors.torch import load_file

    from defectsynth.data.files import read_json
    from defectsynth.diffusion.denoising import decode, denoise, sample_generators
    from defectsynth.diffusion.models import Layout
    from defectsynth.diffusion.schedules import make_sampler
    from defectsynth.metrics.sae_ebr import SaeEbrCounts, sae_ebr_counts

    info = read_json(run / "run.json")
    model = UNet2DModel(**info["unet"])
    model.load_state_dict(load_file(str(weights)))
    model.eval().requires_grad_(False)
    from defectsynth.diffusion.losses import recipe_prediction, scheduler_prediction

    layout = Layout(**info["layout"])
    size, num_classes, prediction = tuple(info["size"]), info["num_classes"], recipe_prediction(info["args"], layout)
    _, cond, boxes = test_conditions(data, size)
    started = time.process_time()
    x = denoise(
        model,
        layout,
        make_sampler(sampler, steps, "fixed", prediction=scheduler_prediction(prediction)),
        cond,
        sample_generators(0, list(range(len(cond)))),
        prediction=prediction,
    )
    counts = SaeEbrCounts.zeros(num_classes)
    for xi, bs in zip(x, boxes):
        _, mask, _ = decode(xi, "joint", num_classes, [], layout.image_channels)
        xyxy = np.array([[b.x_min, b.y_min, b.x_max, b.y_max] for b in bs]).reshape(-1, 4)
        counts = counts + sae_ebr_counts(mask, xyxy, np.array([b.cls for b in bs]), num_classes)
    sae, ebr = counts.sae()[1], counts.ebr()[1]
    return {
        "sae": 1.0 if sae is None else sae,
        "ebr": ebr,
        "defect_pixels": int(counts.generated.sum()),
        "sample_cpu_seconds": round(time.process_time() - started, 1),
    }


def worker(a: argparse.Namespace) -> None:
    """Train one recipe and score its checkpoints; writes ``<out>/<recipe>.json``.

    Every checkpoint: the first sampler with the EMA weights (the curve). The last checkpoint
    reached: every sampler of ``--samplers`` with EMA weights, and the first with the plain weights.
    """
    import defectsynth

    torch.set_num_threads(a.threads)
    run = a.out / f"run-{a.only}"
    if not a.score_only and not (run / f"checkpoint-{a.steps}").is_dir():
        defectsynth.train(
            a.out / "data",
            out=run,
            model=a.model,
            seed=a.seed,
            max_steps=a.steps,
            checkpoint_every=a.every,
            resume=run.exists(),
            **BASE,
            **RECIPES[a.only],
        )
    reached = sorted(int(f.name.split("-")[1]) for f in run.glob("checkpoint-*") if (f / "trainer.json").is_file())
    specs = a.samplers.split(",")
    jobs = [(step, specs[0], "ema") for step in reached]
    if reached:
        jobs += [(reached[-1], spec, "ema") for spec in specs[1:]] + [(reached[-1], specs[0], "model")]
    rows = []
    for step, spec, weights in jobs:
        folder = run / f"checkpoint-{step}"
        trainer = json.loads((folder / "trainer.json").read_text())
        name, steps = spec.split(":")
        row = {
            "recipe": a.only,
            "step": step,
            "train_cpu_seconds": round(trainer["cpu_seconds"], 1),
            "sampler": spec,
            "weights": weights,
            **score(run, folder / f"{weights}.safetensors", a.out / "data", name, int(steps)),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    (a.out / f"{a.only}.json").write_text(json.dumps(rows, indent=1))


def report(a: argparse.Namespace, recipes: list[str]) -> None:
    print(
        f"\ntoy {a.images} images at {a.size}px, model {a.model}, batch 16, lr 5e-4, seed {a.seed}, "
        f"{a.threads} thread(s) per run"
    )
    print(
        f"{'recipe':<24} {'step':>5} {'train CPU s':>11} {'sampler':>9} {'weights':>7} {'SAE':>6} {'EBR':>6} "
        f"{'sample CPU s':>12}"
    )
    for recipe in recipes:
        path = a.out / f"{recipe}.json"
        if not path.is_file():
            print(f"{recipe:<24} (no result)")
            continue
        rows = json.loads(path.read_text())
        for r in rows:
            print(
                f"{recipe:<24} {r['step']:5d} {r['train_cpu_seconds']:11.0f} {r['sampler']:>9} "
                f"{r['weights']:>7} {r['sae']:6.3f} {r['ebr']:6.3f} {r['sample_cpu_seconds']:12.1f}"
            )
        good = [r for r in rows if r["sae"] <= SAE_TARGET and r["ebr"] <= EBR_TARGET]
        first = min(good, key=lambda r: r["step"]) if good else None
        print(
            f"{recipe:<24} reaches SAE<={SAE_TARGET} and EBR<={EBR_TARGET}: "
            + (
                f"step {first['step']}, {first['train_cpu_seconds']:.0f} train CPU s ({first['sampler']}, "
                f"{first['weights']})"
                if first
                else f"not within {a.steps} steps"
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--recipes",
        default="plain,sample,v,sample+selfcond+maskw4",
        help=f"Comma-separated, from: {', '.join(RECIPES)}",
    )
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument(
        "--samplers",
        default="ddpm:25,ddpm:100,ddim:50,dpm:20",
        help="Comma-separated NAME:STEPS: the first scores every checkpoint, all score the last.",
    )
    parser.add_argument("--images", type=int, default=240)
    parser.add_argument("--size", default="32")
    parser.add_argument("--model", default="small")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=4, help="Recipes trained at the same time (worker processes).")
    parser.add_argument("--out", type=Path, default=Path("time-to-quality"))
    parser.add_argument(
        "--score-only", action="store_true", help="Score the checkpoints already written (no training)."
    )
    parser.add_argument("--only", help=argparse.SUPPRESS)
    add_json_option(parser)
    a = parser.parse_args()
    if a.only:
        return worker(a)
    import defectsynth

    recipes = recipe_names(parser, a.recipes, RECIPES)
    if not (a.out / "data").exists():
        defectsynth.prepare("toy", a.out / "data", num=a.images, size=a.size, seed=a.seed)
    todo = [r for r in recipes if a.score_only or not (a.out / f"{r}.json").is_file()]
    argv = [a for a in sys.argv[1:] if not a.startswith("--only")]  # the workers write no --json
    run_workers(__file__, [([*argv, "--only", recipe], a.out / f"{recipe}.log") for recipe in todo], a.jobs)
    report(a, recipes)
    rows = {r: json.loads((a.out / f"{r}.json").read_text()) for r in recipes if (a.out / f"{r}.json").is_file()}
    write_results(a.json, {"steps": a.steps, "every": a.every, "recipes": rows})


if __name__ == "__main__":
    main()
