"""Defects painted into real images (``train --context --crop`` + ``sample --onto``) against copy-paste and
the non-context model.

1. real data: CrackForest at its native 480x320 (``prepare masks --classes crack``; from
   ``--crackforest PATH``, else ``$DEFECTSYNTH_CRACKFOREST``, else ``../shared/data/crackforest`` next
   to the checkout; without any of them the benchmark says so and exits 0), or ``--toy`` (the
   procedural toy at ``--toy-size`` px); ``--quick``: the toy, a few CPU minutes.
2. painted: a context run trained on ``--crop`` windows of the real train split paints, into every
   real train image, that image's own boxes moved to free places of it (``--placement random``,
   seeded): new defects on real surface, next to the image's own.
3. copy-paste (the classic augmentation): the same images with, in every moved box, the real pixels
   and mask of the box it was moved from: the same boxes at the same positions, real defects.
4. the non-context model: a box-guided run (the default recipe) trained on the real train split
   resized to ``--baseline-size`` (whole images invented at a size small enough to train), sampled
   for the real train boxes.
5. SAE / EBR of all three; ``metrics texture`` against the real train images (whole images and
   inside the boxes: high-frequency energy, colour, grey-level histogram distance; the non-context
   samples against the real ones resized to their size); ``evaluate`` (one smp network, no
   pretrained weights, equal optimiser steps per mix, ``--repeats`` >= 2) of ``R=all,S=0`` (real
   only) and ``R=all,S=R`` with the painted, the copy-paste and the non-context images; the seam
   step (how visible a painted region is as a patch: the colour of a new box's background against a
   ring around its region, next to the same for the input image).

Everything is kept under ``--out`` (default ``inpaint/``); a rerun reuses the prepared data, the run,
the samples and evaluate's cells. Look at ``painted/previews/onto-*.png`` (input | output | overlay).

    python benchmarks/inpaint.py --crackforest ../shared/data/crackforest --channels grey --crop 64 --train-steps 4000 --json inpaint.json
    python benchmarks/inpaint.py --quick       # the toy: 48 images at 64 px, 32 px windows, 60 steps
    python benchmarks/inpaint.py --toy --crop 64 --train-steps 1000 --epochs 30 --json inpaint-toy.json
    python benchmarks/inpaint.py --channels grey --crop 64 --train-steps 1000 --steps 20 --size 288x192 --epochs 15  # cut down
"""  # noqa: E501

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _results import add_json_option, write_results
from fidelity import REAL_ONLY, REAL_PLUS_SYNTHETIC, crackforest_path

QUICK = dict(
    toy_images=48,
    toy_size="64",
    crop=32,
    model="tiny",
    train_steps=60,
    steps=10,
    epochs=2,
    size="64",
    baseline_steps=60,
)


def real_dataset(a: argparse.Namespace) -> Path:
    """The real dataset under --out: the toy, or CrackForest at native resolution."""
    import defectsynth

    out = a.out / "real"
    if not (out / "dataset.json").is_file():
        if a.toy:
            defectsynth.prepare("toy", out, num=a.toy_images, size=a.toy_size, seed=a.seed)
        else:
            defectsynth.prepare(
                "masks", out, source_dir=crackforest_path(a.crackforest), classes="crack", size="480x320", seed=a.seed
            )
    return out


def trained(a: argparse.Namespace, real: Path, run: Path, steps: int, **options) -> Path:
    """``run`` trained on the real train split for ``steps`` (batch 16, lr 5e-4, one checkpoint at the end,
    the benchmark's seed and channels); an existing ``checkpoint-<steps>`` is reused, a partial run resumed."""
    import defectsynth

    if not (run / f"checkpoint-{steps}").is_dir():
        defectsynth.train(
            real,
            out=run,
            model=a.model,
            batch_size=16,
            lr=5e-4,
            epochs=10**6,
            max_steps=steps,
            checkpoint_every=steps,
            preview_every=0,
            split="train",
            channels=a.channels,
            seed=a.seed,
            resume=(run / "run.json").is_file(),
            progress=a.progress,
            **options,
        )
    return run


def train_run(a: argparse.Namespace, real: Path) -> Path:
    return trained(a, real, a.out / "run", a.train_steps, context=True, crop=a.crop)


def baseline_samples(a: argparse.Namespace, real: Path) -> Path:
    """The non-context model's samples for the real train images' boxes: a box-guided run (cond basd, target joint,
    the default recipe) trained on the real train split resized to ``--baseline-size``, the way a model
    that invents whole images has to be trained; a run already at ``<out>/non-context-run`` with a
    ``checkpoint-<--baseline-steps>`` is reused."""
    import defectsynth

    run = trained(a, real, a.out / "non-context-run", a.baseline_steps, size=a.baseline_size)
    out = a.out / "non-context"
    # the boxes of its own training data (the real train split at its size, boxes as it was trained on them)
    defectsynth.sample(run, out=out, scheduler="ddim", steps=a.steps, seed=a.seed, progress=a.progress)
    return out


def copy_paste(real: Path, painted: Path, out: Path) -> Path:
    """The painted samples' images and boxes, with real defects instead: in every new box the pixels
    and mask of the box of the same condition it was moved from (``placement random`` keeps order and size,
    and lists the boxes it left out in ``source.unplaced``)."""
    from defectsynth.data import Dataset, DatasetWriter, Manifest, Sample

    if (out / "dataset.json").is_file() and "onto_of" in Dataset(out).manifest.source:
        return out  # a folder from before 66be493 lacks onto_of (the seam step needs it): made again
    src, synth = Dataset(real), Dataset(painted)
    source = synth.manifest.source
    manifest = Manifest(
        name="copy-paste",
        classes=src.manifest.classes,
        synthetic=True,
        source={
            "method": "copy-paste",
            "of": str(painted.resolve()),
            "condition_of": source["condition_of"],
            "onto_of": source["onto_of"],
        },
    )
    with DatasetWriter(out, manifest, overwrite=True) as writer:
        for stem in synth.stems:
            target, condition = src.read(source["onto_of"][stem]), src.read(source["condition_of"][stem])
            new = synth.read_boxes(stem)[len(target.boxes) :]
            left_out = set(source.get("unplaced", {}).get(stem, []))
            kept = [b for i, b in enumerate(condition.boxes) if i not in left_out]
            image, mask = target.image.copy(), target.mask.copy()
            for moved, box in zip(new, kept, strict=True):
                image[moved.y_min : moved.y_max, moved.x_min : moved.x_max] = condition.image[
                    box.y_min : box.y_max, box.x_min : box.x_max
                ]
                mask[moved.y_min : moved.y_max, moved.x_min : moved.x_max] = condition.mask[
                    box.y_min : box.y_max, box.x_min : box.x_max
                ]
            writer.add(Sample(stem, image, mask, target.boxes + new))
        writer.commit()
    return out


def evaluation(a: argparse.Namespace, real: Path, synthetic: list[Path]) -> list[dict]:
    import defectsynth

    report = defectsynth.evaluate(
        real,
        a.out / "report",
        synthetic=synthetic,
        models=["unet"],
        encoder="resnet18",
        encoder_weights=None,
        epochs=a.epochs,
        size=a.size,
        repeats=a.repeats,
        mix=[REAL_ONLY, REAL_PLUS_SYNTHETIC],
        seed=a.seed,
        progress=a.progress,
    )
    keep = (
        "mix",
        "synthetic",
        "miou_mean",
        "miou_std",
        "repeats",
        "n_real",
        "n_synthetic",
        "iou_per_class",
        "diff_pct",
    )
    return [{k: row.get(k) for k in keep} for row in report["rows"]]


def real_train_at(real: Path, size: str, out: Path) -> Path:
    """The real train split resized to ``size`` (the non-context run's), to compare its texture at its
    own resolution (texture statistics depend on it)."""
    from defectsynth.data import Dataset, DatasetWriter
    from defectsynth.data.resize import parse_size, resize_sample

    if not (out / "dataset.json").is_file():
        src = Dataset(real)
        with DatasetWriter(out, src.manifest) as writer:
            for stem in src.split("train"):
                writer.add(resize_sample(src.read(stem), parse_size(size)))
            writer.commit()
    return out


RING = 8  # px around a painted region whose colour its background should continue


def seam_step(folder: Path, real: Path, margin: int) -> dict:
    """How visible the painted regions are as patches: per channel, the mean |colour of a new box's
    background (mask 0) - colour of a ring of RING px around its region| over the samples, for the
    output and for the input image at the same pixels (the real surface's own variation)."""
    import cv2
    import numpy as np

    from defectsynth.data import Dataset
    from defectsynth.diffusion.context import region_mask

    out, src = Dataset(folder), Dataset(real)
    steps: dict[str, list] = {"output": [], "input": []}
    for stem in out.stems:
        s, given = out.read(stem), src.read(out.manifest.source["onto_of"][stem])
        new = s.boxes[len(given.boxes) :]
        region = region_mask(new, s.size, margin)
        kernel = np.ones((2 * RING + 1, 2 * RING + 1), np.uint8)
        ring = cv2.dilate(region.astype(np.uint8), kernel).astype(bool) & ~region
        ring &= ~region_mask(given.boxes, s.size, margin)  # the image's own defects are not surface
        inner = region_mask(new, s.size, 0) & (s.mask == 0)
        if ring.sum() >= 10 and inner.sum() >= 10:
            for key, image in (("output", s.image), ("input", given.image)):
                pixels = image.astype(np.float64)
                steps[key].append(np.abs(pixels[inner].mean(0) - pixels[ring].mean(0)))
    return {key: np.mean(v, axis=0).round(2).tolist() if v else None for key, v in steps.items()} | {
        "samples": len(steps["output"])
    }


def texture_in_boxes(folder: Path, real: Path, split: str | None = "train") -> dict:
    from defectsynth.metrics import compute_metrics

    texture = compute_metrics(["texture"], synthetic=folder, real=real, split=split)["texture"]
    return {
        region: {"ratio": texture[region].get("ratio"), "distance": texture[region].get("distance")}
        for region in ("image", "boxes")
    }


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--crackforest", type=Path, help="CrackForest folder (image/ + groundTruth/ or images + masks)")
    p.add_argument("--toy", action="store_true", help="the procedural toy instead of CrackForest")
    p.add_argument("--quick", action="store_true", help="the toy, tiny settings: a few CPU minutes")
    p.add_argument("--out", type=Path, default=Path("inpaint"), help="work folder (reused by a rerun)")
    p.add_argument("--toy-images", type=int, default=120)
    p.add_argument("--toy-size", default="96")
    p.add_argument("--crop", type=int, default=64, help="train --crop: the window size")
    p.add_argument("--model", default="small")
    p.add_argument("--train-steps", type=int, default=4000)
    p.add_argument("--steps", type=int, default=50, help="DDIM steps of sample --onto")
    p.add_argument("--epochs", type=int, default=30, help="evaluate epochs")
    p.add_argument("--size", help="evaluate --size (default: the data's own, CrackForest 480x320, the toy --toy-size)")
    p.add_argument("--channels", default="auto", help="train --channels of both runs (auto, rgb or grey)")
    p.add_argument("--baseline-size", help="the non-context run's train --size (default: 96x64, the toy 32)")
    p.add_argument("--baseline-steps", type=int, default=800, help="the non-context run's training steps")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--progress", action="store_true")
    add_json_option(p)
    a = p.parse_args()
    if a.quick:
        a.toy = True
        for key, value in QUICK.items():
            setattr(a, key, value)
    a.size = a.size or (a.toy_size if a.toy else "480x320")
    a.baseline_size = a.baseline_size or ("32" if a.toy else "96x64")
    if a.repeats < 2:
        p.error("--repeats: at least 2 (mean and spread of evaluate)")
    from defectsynth.errors import OptionError
    from defectsynth.evaluation import check_train_size

    try:  # evaluate's own check, here rather than after painting for many minutes
        check_train_size(a.size)
    except OptionError as err:
        p.error(str(err))
    return a


def main() -> None:
    a = parse_args()
    if not a.toy and not (a.out / "real" / "dataset.json").is_file() and not crackforest_path(a.crackforest).is_dir():
        print(
            f"skipped: CrackForest not found at {crackforest_path(a.crackforest)} (pass --crackforest, set "
            "DEFECTSYNTH_CRACKFOREST, or use --toy / --quick)"
        )
        write_results(a.json, {"status": "skipped: no real data"})
        return
    import defectsynth
    from defectsynth.data import Dataset
    from defectsynth.metrics import compute_metrics

    start, seconds = time.perf_counter(), {}
    real = real_dataset(a)
    run = train_run(a, real)
    seconds["train"] = time.perf_counter() - start
    painted = a.out / "painted"
    defectsynth.sample(
        run,
        out=painted,
        onto=f"{real}:train",
        conditions=f"{real}:train",
        placement="random",
        scheduler="ddim",
        steps=a.steps,
        seed=a.seed,
        progress=a.progress,
    )
    seconds["sample"] = time.perf_counter() - start - seconds["train"]
    pasted = copy_paste(real, painted, a.out / "copy-paste")
    baseline = baseline_samples(a, real)
    seconds["baseline"] = time.perf_counter() - start - seconds["train"] - seconds["sample"]
    result = {
        "status": "ok",
        "data": "toy" if a.toy else "crackforest",
        "crop": a.crop,
        "model": a.model,
        "train_steps": a.train_steps,
        "channels": a.channels,
        "baseline": {"size": a.baseline_size, "steps": a.baseline_steps},
        "sampler_steps": a.steps,
        "seconds": seconds,
        "previews": str(painted / "previews"),
        "unplaced_boxes": sum(len(v) for v in Dataset(painted).manifest.source.get("unplaced", {}).values()),
    }
    margin = json.loads((run / "run.json").read_text())["args"].get("context_margin", 0)
    small_real = real_train_at(real, a.baseline_size, a.out / "real-baseline-size")
    for name, folder, against, split in (
        ("painted", painted, real, "train"),
        ("copy_paste", pasted, real, "train"),
        ("non_context", baseline, small_real, None),  # at the non-context run's size
    ):
        m = compute_metrics(["sae", "ebr"], synthetic=folder)
        texture = texture_in_boxes(folder, against, split)
        result[name] = {"sae": m["sae"]["all"], "ebr": m["ebr"]["all"], "texture": texture}
        if name != "non_context":
            result[name]["seam_step"] = seam_step(folder, real, margin)
        print(name, json.dumps(result[name]), flush=True)
    result["evaluate"] = evaluation(a, real, [painted, pasted, baseline])
    for row in result["evaluate"]:
        print(
            f"{row['mix']:<12} {str(row.get('synthetic') or '-'):<40} mIoU {row['miou_mean']:.4f} ± "
            f"{row['miou_std']:.4f}",
            flush=True,
        )
    result["seconds"]["total"] = time.perf_counter() - start
    write_results(a.json, result)


if __name__ == "__main__":
    main()
