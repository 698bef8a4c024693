"""Fidelity on real data: do the synthetic images look like, and train like, the real ones? (no downloaded weights)

For a real dataset folder (with ``train`` and ``test`` splits and masks) and synthetic samples drawn
for its boxes, reports

1. train-on-synthetic, test-on-real: ``defectsynth.evaluate`` (one smp network, a real encoder
   without pretrained weights, the same epochs for every mix, ``--repeats`` >= 2) of ``R=0,S=R``
   (synthetic only, as many images as the real train part) and ``R=all,S=R`` relative to
   ``R=all,S=0`` (real only): mIoU mean and std over repeats, the defect classes' IoU, the ratios;
2. texture statistics (``defectsynth metrics texture``) of the synthetic train-box samples vs the
   real train images, whole images and inside the boxes (synthetic / real ratios near 1 = matching);
3. SAE and EBR of samples drawn for the real *test* boxes (never seen in training);
4. FID / KID (InceptionV3 2048 features) when ``--weights-dir`` holds ``inception_v3_fid.safetensors``,
   else "not run";
5. with ``--every N`` (or ``--checkpoints`` for a given ``--run``): time to fidelity, per checkpoint of the trained run
   its training CPU seconds (``trainer.json`` ``cpu_seconds``) and its synthetic-only / real-only mIoU ratio, and the
   first checkpoint reaching 0.8;

and writes ``preview.png`` (one row per test condition: real image | mask | boxes, then the
synthetic sample of the same boxes). Everything is kept under ``--out`` (default ``fidelity/``);
a rerun with the same options reuses the prepared data, the run, the samples and evaluate's cells.

Real data: ``--real DIR``, ``--toy`` (the built-in procedural toy), or CrackForest, prepared with
``defectsynth.prepare("masks", classes="crack", size=--size)`` from ``--crackforest PATH``, else
``$DEFECTSYNTH_CRACKFOREST``, else ``../shared/data/crackforest`` next to the checkout; without any
of them the benchmark says so and exits 0. Synthetic data: ``--run RUN`` (sampled here with
``--scheduler``/``--steps``), ``--synthetic DIR --synthetic-test DIR`` (already sampled), or by
default a run trained here on the real train split with ``train()`` options ``--train JSON`` on
top of cond basd, target joint, model small, batch 16, lr 5e-4, ``max_steps`` 1200.

    python benchmarks/fidelity.py --crackforest ../shared/data/crackforest --size 64 \\
        --train '{"max_steps": 1200}' --every 300 --json fidelity.json
    python benchmarks/fidelity.py --real data/cf --run runs/cf --evaluate-args '{"budget": "steps"}'
    python benchmarks/fidelity.py --toy --quick      # a few CPU minutes: 48 toy images, 40 steps, 2 checkpoints
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_CRACKFOREST = HERE.parent.parent / "shared" / "data" / "crackforest"
REAL_ONLY, SYNTHETIC_ONLY, REAL_PLUS_SYNTHETIC = "R=all,S=0", "R=0,S=R", "R=all,S=R"
TARGET_RATIO = 0.8
TRAIN_BASE = dict(
    cond="basd",
    target="joint",
    model="small",
    batch_size=16,
    lr=5e-4,
    epochs=10**6,
    max_steps=1200,
    preview_every=0,
    split="train",
)
# --quick: settings for options left at their defaults (the toy at 32 px, a few minutes on 2 cores)
QUICK = dict(toy_images=48, size="32", steps=10, epochs=2, train_steps=40, every=20)
PREVIEW_ROWS = 4


# -- the pieces (pure, tested in tests/test_benchmarks_run.py) --------------------------------------
def mix_rows(report: dict) -> dict[str, dict]:
    """Per mix of an ``evaluate`` report: mIoU mean/std over repeats, defect-class IoU, #R/#S, best epochs."""
    defect_classes = report["classes"][1:]
    rows = {}
    for row in report["rows"]:
        epochs = [c["best_epoch"] for c in report["cells"] if c["mix"] == row["mix"] and c["model"] == row["model"]]
        rows[row["mix"]] = {
            "miou_mean": row["miou_mean"],
            "miou_std": row["miou_std"],
            "repeats": row["repeats"],
            "n_real": row["n_real"],
            "n_synthetic": row["n_synthetic"],
            "defect_iou": {name: row["iou_per_class"][name] for name in defect_classes},
            "best_epochs": epochs,
        }
    return rows


def ratio(value: float | None, reference: float | None) -> float | None:
    return None if value is None or not reference else value / reference


def tstr_summary(report: dict) -> dict:
    """The TSTR block: per-mix rows and the ratios synthetic-only / real-only and real+synthetic / real-only."""
    rows = mix_rows(report)
    base = rows.get(REAL_ONLY, {}).get("miou_mean")
    return {
        "mixes": rows,
        "budget": report["config"].get("protocol", {}).get("budget", "epochs"),
        "synthetic_only_ratio": ratio(rows.get(SYNTHETIC_ONLY, {}).get("miou_mean"), base),
        "real_plus_synthetic_ratio": ratio(rows.get(REAL_PLUS_SYNTHETIC, {}).get("miou_mean"), base),
    }


def first_reaching(curve: list[dict], target: float = TARGET_RATIO) -> dict | None:
    """The earliest checkpoint row whose ``synthetic_only_ratio`` is at least ``target``, or None."""
    good = [row for row in curve if row["synthetic_only_ratio"] is not None and row["synthetic_only_ratio"] >= target]
    return min(good, key=lambda row: row["step"]) if good else None


def checkpoint_run(run: Path, checkpoint: Path, out: Path) -> Path:
    """A run folder that samples with the EMA (else the plain) weights of ``checkpoint``: run.json and
    ``unet_ema/`` (the run's network config next to the checkpoint's safetensors, linked where possible)."""
    weights = checkpoint / "ema.safetensors"
    weights = weights if weights.is_file() else checkpoint / "model.safetensors"
    config = next(p for p in (run / "unet_ema" / "config.json", run / "unet" / "config.json") if p.is_file())
    (out / "unet_ema").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run / "run.json", out / "run.json")
    shutil.copyfile(config, out / "unet_ema" / "config.json")
    target = out / "unet_ema" / "diffusion_pytorch_model.safetensors"
    target.unlink(missing_ok=True)
    try:
        os.link(weights, target)
    except OSError:
        shutil.copyfile(weights, target)
    return out


def checkpoints(run: Path) -> list[tuple[int, Path]]:
    """(step, folder) of the run's complete checkpoints, by step."""
    found = [(int(p.name.split("-", 1)[1]), p) for p in run.glob("checkpoint-*") if (p / "trainer.json").is_file()]
    return sorted(found)


def preview(real: Path, synthetic: Path, path: Path, rows: int = PREVIEW_ROWS) -> Path:
    """``path``: per row the real sample (image | mask | boxes), a gap, the synthetic sample of its boxes."""
    from defectsynth.data import Dataset
    from defectsynth.data.colors import class_palette
    from defectsynth.data.files import write_image
    from defectsynth.data.resize import resize_sample
    from defectsynth.diffusion.previews import preview_grid, preview_row, viewing_scale

    syn, real_ds = Dataset(synthetic), Dataset(real)
    palette = class_palette(real_ds.manifest.classes)
    condition_of = syn.manifest.source.get("condition_of", {})
    lines = []
    for stem in syn.stems[:rows]:
        s = syn.read(stem)
        r = resize_sample(real_ds.read(condition_of.get(stem, stem)), s.size)
        gap = np.full((s.size[0], 4, 3), 255, np.uint8)
        lines.append(
            np.concatenate(
                [preview_row(r.image, r.mask, r.boxes, palette), gap, preview_row(s.image, s.mask, s.boxes, palette)],
                axis=1,
            )
        )
    write_image(path, preview_grid(lines, viewing_scale(lines[0].shape[0])))
    return path


# -- the stages ------------------------------------------------------------------------------------
def crackforest_path(given: Path | None) -> Path:
    """Where CrackForest is looked for: --crackforest, else $DEFECTSYNTH_CRACKFOREST, else next to the checkout."""
    return given or (
        Path(os.environ["DEFECTSYNTH_CRACKFOREST"])
        if os.environ.get("DEFECTSYNTH_CRACKFOREST")
        else DEFAULT_CRACKFOREST
    )


def real_dataset(a: argparse.Namespace) -> Path:
    """The real dataset folder: --real, or the toy / CrackForest prepared under --out (main checked that one exists)."""
    import defectsynth

    if a.real is not None:
        return a.real
    out = a.out / "real"
    if (out / "dataset.json").is_file():
        return out
    if a.toy:
        defectsynth.prepare("toy", out, num=a.toy_images, size=a.size, seed=a.seed)
        return out
    defectsynth.prepare(
        "masks",
        out,
        source_dir=crackforest_path(a.crackforest),
        classes="crack",
        size=a.size,
        split_fractions=a.split,
        seed=a.seed,
    )
    return out


def train_run(a: argparse.Namespace, real: Path) -> Path:
    """Train (or finish training) the run under --out with TRAIN_BASE + --train, a checkpoint every --every steps."""
    import defectsynth

    options = {
        **TRAIN_BASE,
        "max_steps": a.train_steps,
        "seed": a.seed,
        "checkpoints_total_limit": None,
        **json.loads(a.train or "{}"),
    }
    options["checkpoint_every"] = a.every or options.get("checkpoint_every") or options["max_steps"]
    run = a.out / "run"
    if not (run / f"checkpoint-{options['max_steps']}").is_dir():
        defectsynth.train(real, out=run, resume=(run / "run.json").is_file(), progress=a.progress, **options)
    return run


def draw(a: argparse.Namespace, run: Path, real: Path, split: str, out: Path) -> Path:
    import defectsynth

    defectsynth.sample(
        run,
        out=out,
        conditions=f"{real}:{split}",
        scheduler=a.scheduler,
        steps=a.steps,
        seed=a.seed,
        progress=a.progress,
    )
    return out


def tstr(a: argparse.Namespace, real: Path, synthetic: Path, out: Path, mixes: list[str]) -> dict:
    import defectsynth

    report = defectsynth.evaluate(
        real,
        out,
        synthetic=[synthetic],
        models=[a.seg_model],
        encoder=a.encoder,
        encoder_weights=None,
        epochs=a.epochs,
        batch_size=a.batch_size,
        size=a.size,
        lr=a.lr,
        loss=a.loss,
        repeats=a.repeats,
        mix=mixes,
        seed=a.seed,
        progress=a.progress,
        **json.loads(a.evaluate_args or "{}"),
    )
    return tstr_summary(report)


def fid_kid(a: argparse.Namespace, real: Path, synthetic: Path) -> dict:
    from defectsynth.metrics import compute_metrics
    from defectsynth.metrics.weights import INCEPTION, WEIGHT_FILES

    if a.weights_dir is None or not (a.weights_dir / WEIGHT_FILES[INCEPTION]).is_file():
        return {"status": f"not run (needs --weights-dir with {WEIGHT_FILES[INCEPTION]})"}
    return {
        "status": "ok",
        **compute_metrics(
            ["fid", "kid"], synthetic=synthetic, real=real, split="train", features="2048", weights_dir=a.weights_dir
        ),
    }


def time_to_fidelity(a: argparse.Namespace, run: Path, real: Path, real_only: float | None) -> list[dict]:
    """Per checkpoint: train CPU seconds and the synthetic-only / real-only mIoU ratio (real-only from the main
    evaluation)."""
    curve = []
    for step, folder in checkpoints(run):
        work = a.out / "checkpoints" / f"step-{step}"
        view = checkpoint_run(run, folder, work / "run")
        synthetic = draw(a, view, real, "train", work / "synthetic")
        block = tstr(a, real, synthetic, work / "evaluate", [SYNTHETIC_ONLY])["mixes"][SYNTHETIC_ONLY]
        trainer = json.loads((folder / "trainer.json").read_text())
        row = {
            "step": step,
            "train_cpu_seconds": round(trainer["cpu_seconds"], 1),
            "synthetic_only_miou": block["miou_mean"],
            "synthetic_only_std": block["miou_std"],
            "synthetic_only_ratio": ratio(block["miou_mean"], real_only),
        }
        print(json.dumps(row), flush=True)
        curve.append(row)
    return curve


# -- the table -------------------------------------------------------------------------------------
def _f(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_table(result: dict) -> None:
    t = result["tstr"]
    print(
        f"\nfidelity: real {result['name']} {result['real']} ({result['splits']['train']} train / "
        f"{result['splits']['test']} test images at "
        f"{result['size']} px); synthetic {result['synthetic']['train']}; sampler {result['sampler']}"
    )
    print(
        f"train on synthetic, test on real: {t['network']}, {t['epochs']} epochs, budget {t['budget']}, "
        f"{t['repeats']} repeats"
    )
    print(f"{'mix':<11} {'#R':>4} {'#S':>4} {'mIoU':>6} {'± std':>6}  defect IoU            best epochs")
    for mix, row in t["mixes"].items():
        defect = ", ".join(f"{n} {_f(v)}" for n, v in row["defect_iou"].items())
        print(
            f"{mix:<11} {row['n_real']:>4} {row['n_synthetic']:>4} {_f(row['miou_mean']):>6} "
            f"{_f(row['miou_std']):>6}  {defect:<21} {row['best_epochs']}"
        )
    print(
        f"synthetic-only / real-only mIoU {_f(t['synthetic_only_ratio'])} (target >= {TARGET_RATIO}); "
        f"real+synthetic / real-only {_f(t['real_plus_synthetic_ratio'])}"
    )
    tex = result["texture"]
    print(f"\ntexture, synthetic / real (train boxes; high frequency above {tex['hf_cutoff']} cycles/pixel)")
    print(
        f"{'region':<7} {'crops':>11} {'Laplacian':>9} {'HF share':>8} {'mean R,G,B':>17} {'std R,G,B':>17} "
        f"{'hist L1':>7} {'W (levels)':>10}"
    )
    for region in ("image", "boxes"):
        r = tex[region]
        means = ",".join(_f(v, 2) for v in (r["ratio"]["mean"] or {}).values())
        stds = ",".join(_f(v, 2) for v in (r["ratio"]["std"] or {}).values())
        crops = f"{r['real']['images']}/{r['synthetic']['images']}"
        print(
            f"{region:<7} {crops:>11} {_f(r['ratio']['laplacian_var']):>9} {_f(r['ratio']['hf_share']):>8} "
            f"{means:>17} {stds:>17} "
            f"{_f(r['distance']['hist_l1']):>7} {_f(r['distance']['wasserstein'], 2):>10}"
        )
    se = result["sae_ebr_test"]
    print(f"\nsamples of the real test boxes: SAE {_f(se['sae'])}, EBR {_f(se['ebr'])}")
    fk = result["fid_kid"]
    print(
        "FID / KID (2048): "
        + (f"{_f(fk['fid']['2048'], 2)} / {_f(fk['kid']['2048']['mean'], 4)}" if fk["status"] == "ok" else fk["status"])
    )
    if result.get("time_to_fidelity") is not None:
        print(f"\ntime to fidelity (synthetic-only >= {TARGET_RATIO} x real-only mIoU)")
        for row in result["time_to_fidelity"]:
            print(
                f"  step {row['step']:>6}  train CPU s {row['train_cpu_seconds']:>8.0f}  synthetic-only mIoU "
                f"{_f(row['synthetic_only_miou'])}"
                f"  ratio {_f(row['synthetic_only_ratio'])}"
            )
        first = result["first_reaching"]
        print(
            "  first reaching: "
            + (
                f"step {first['step']}, {first['train_cpu_seconds']:.0f} train CPU s"
                if first
                else "none of the checkpoints"
            )
        )
    print(f"\npreview: {result['preview']}")


# -- main ------------------------------------------------------------------------------------------
def parse_args() -> argparse.Namespace:
    from _results import add_json_option

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    real = p.add_mutually_exclusive_group()
    real.add_argument("--real", type=Path, help="prepared real dataset folder (train and test splits, masks)")
    real.add_argument(
        "--crackforest",
        type=Path,
        help="CrackForest folder (images/, masks/); default $DEFECTSYNTH_CRACKFOREST or ../shared/data/crackforest",
    )
    real.add_argument("--toy", action="store_true", help="the built-in procedural toy data")
    p.add_argument("--size", help="image size for the prepared data and evaluate (default 64; --quick 32)")
    p.add_argument(
        "--split",
        default="0.7,0.0,0.3",
        help="train/val/test fractions when preparing CrackForest (evaluate holds out 20%% of train itself)",
    )
    p.add_argument("--toy-images", type=int, help="toy images (default 240; --quick 60)")
    synth = p.add_mutually_exclusive_group()
    synth.add_argument("--run", type=Path, help="a trained run folder to sample the train and test boxes from")
    synth.add_argument(
        "--synthetic",
        type=Path,
        help="synthetic dataset already drawn for the real train boxes (needs --synthetic-test)",
    )
    synth.add_argument(
        "--train", help="JSON of train() options on top of the base recipe (default: train the base recipe)"
    )
    p.add_argument("--synthetic-test", type=Path, help="synthetic dataset drawn for the real test boxes")
    p.add_argument(
        "--train-steps",
        type=int,
        help="max_steps of the run trained here (default 1200; --quick 60; --train's max_steps wins)",
    )
    p.add_argument(
        "--every",
        type=int,
        help="checkpoint every N steps and report time to fidelity per checkpoint (with training here)",
    )
    p.add_argument(
        "--checkpoints", action="store_true", help="with --run: report time to fidelity over the run's own checkpoints"
    )
    p.add_argument("--scheduler", default="ddim")
    p.add_argument("--steps", type=int, help="sampling steps (default 50; --quick 10)")
    p.add_argument("--seg-model", default="unet", help="smp architecture of the TSTR network")
    p.add_argument("--encoder", default="resnet18", help="its encoder (no pretrained weights)")
    p.add_argument("--epochs", type=int, help="evaluate epochs (default 15; --quick 3)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--loss", default="dice+ce")
    p.add_argument("--evaluate-args", help='JSON of further evaluate() options, e.g. \'{"budget": "steps"}\'')
    p.add_argument("--hf-cutoff", type=float, default=0.25, help="texture: high-frequency cut-off in cycles/pixel")
    p.add_argument(
        "--weights-dir", type=Path, help="folder with inception_v3_fid.safetensors for FID/KID (else not run)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--out", type=Path, default=Path("fidelity"), help="work folder (data, run, samples, reports, preview.png)"
    )
    p.add_argument("--progress", action="store_true", help="progress bars")
    p.add_argument(
        "--quick", action="store_true", help="small settings: " + ", ".join(f"{k} {v}" for k, v in QUICK.items())
    )
    add_json_option(p)
    a = p.parse_args()
    defaults = {
        **dict(toy_images=240, size="64", steps=50, epochs=15, train_steps=1200, every=None),
        **(QUICK if a.quick else {}),
    }
    if a.run is not None or a.synthetic is not None:
        defaults["every"] = None  # time to fidelity needs the run trained here
    for key, value in defaults.items():
        if getattr(a, key) is None:
            setattr(a, key, value)
    if (a.synthetic is None) != (a.synthetic_test is None):
        p.error("--synthetic and --synthetic-test go together")
    if a.every is not None and (a.run is not None or a.synthetic is not None):
        p.error(
            "--every needs the run trained here (leave out --run / --synthetic; --checkpoints scores a given run's)"
        )
    if a.checkpoints and a.run is None:
        p.error("--checkpoints goes with --run (a run trained here is scored per checkpoint with --every)")
    if a.repeats < 2:
        p.error("--repeats: at least 2 (a mean and a spread)")
    for option in ("train", "evaluate_args"):
        try:
            if not isinstance(json.loads(getattr(a, option) or "{}"), dict):
                raise ValueError("not an object")
        except ValueError as err:
            p.error(f"--{option.replace('_', '-')}: a JSON object, {err}")
    return a


def main() -> None:
    from _results import write_results

    a = parse_args()
    started = time.perf_counter()
    if (
        a.real is None
        and not a.toy
        and not (a.out / "real" / "dataset.json").is_file()
        and not crackforest_path(a.crackforest).is_dir()
    ):
        print(
            f"fidelity: no real data: CrackForest not found at {crackforest_path(a.crackforest)} (give --real, --toy "
            "or --crackforest, "
            "or set DEFECTSYNTH_CRACKFOREST): skipped"
        )
        write_results(a.json, {"status": "skipped: no real data"})
        return
    from defectsynth.data import Dataset
    from defectsynth.metrics import compute_metrics

    real = real_dataset(a)
    run = a.run if a.run is not None or a.synthetic is not None else train_run(a, real)
    if a.synthetic is not None:
        syn_train, syn_test = a.synthetic, a.synthetic_test
    else:
        syn_train, syn_test = (
            draw(a, run, real, "train", a.out / "synthetic-train"),
            draw(a, run, real, "test", a.out / "synthetic-test"),
        )
    ds = Dataset(real)
    t = tstr(a, real, syn_train, a.out / "evaluate", [REAL_ONLY, SYNTHETIC_ONLY, REAL_PLUS_SYNTHETIC])
    t.update(network=f"{a.seg_model} {a.encoder} (encoder_weights None)", epochs=a.epochs, repeats=a.repeats)
    sae_ebr = compute_metrics(["sae", "ebr"], synthetic=syn_test)
    result = {
        "status": "ok",
        "real": str(real),
        "name": ds.manifest.name,
        "size": a.size,
        "splits": {s: len(ds.split(s)) for s in ("train", "test")},
        "synthetic": {"train": str(syn_train), "test": str(syn_test), "run": None if run is None else str(run)},
        "sampler": f"{a.scheduler} {a.steps}" if a.synthetic is None else "given",
        "tstr": t,
        "texture": compute_metrics(["texture"], synthetic=syn_train, real=real, split="train", hf_cutoff=a.hf_cutoff)[
            "texture"
        ],
        "sae_ebr_test": {
            "sae": sae_ebr["sae"]["all"],
            "ebr": sae_ebr["ebr"]["all"],
            "counts": {k: sae_ebr[k]["counts"] for k in ("sae", "ebr")},
        },
        "fid_kid": fid_kid(a, real, syn_train),
        "preview": str(preview(real, syn_test, a.out / "preview.png")),
    }
    if a.every is not None or a.checkpoints:
        result["time_to_fidelity"] = time_to_fidelity(a, run, real, t["mixes"][REAL_ONLY]["miou_mean"])
        result["first_reaching"] = first_reaching(result["time_to_fidelity"])
    result["seconds"] = round(time.perf_counter() - started, 1)
    print_table(result)
    print(f"whole benchmark {result['seconds']:.0f} s; folder {a.out}")
    write_results(a.json, result)


if __name__ == "__main__":
    main()
