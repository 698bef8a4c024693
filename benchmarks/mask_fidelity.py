"""Mask fidelity of ISDM: do the generated images show the defects of their condition masks?

The Lemons thesis' comparisons (chapter 6): guidance scale 1.0 vs 1.5, and ISDM's 300 rescaled
steps vs the full 1000-step schedule. On toy data:

1. train a tiny mask-conditioned model (``--cond mask --target image``, L_hybrid) for a fixed CPU
   budget, then finetune it with ``--drop-rate 0.2`` for a third of that budget (ISDM);
2. train a segmentation network (smp U-Net, resnet18, no pretrained weights) on the real training
   split with ``defectsynth.evaluation.training``;
3. sample one image per test-split mask with each sampler setting, let the segmentation network
   predict on them, and print the IoU between its predictions and the condition masks
   (``defectsynth.metrics.segmentation``). The real test images give the segmenter's own ceiling.

    python benchmarks/mask_fidelity.py [--budget-seconds 300] [--images 160] [--size 32] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import add_json_option, write_results  # noqa: E402
from box_fidelity import steps_for_budget  # noqa: E402

import defectsynth  # noqa: E402
from defectsynth.data import Dataset  # noqa: E402
from defectsynth.evaluation.data import PairCache  # noqa: E402
from defectsynth.evaluation.training import (  # noqa: E402
    TrainConfig,
    build_loss,
    build_model,
    make_loader,
    predict_stats,
    train_epoch,
)
from defectsynth.metrics.segmentation import reduce_stats  # noqa: E402

SETTINGS = (  # (label, guidance, steps, rescale)
    ("s=1.0, 300 rescaled", 1.0, 300, True),
    ("s=1.5, 300 rescaled", 1.5, 300, True),
    ("s=1.0, 1000 steps", 1.0, 1000, False),
    ("s=1.5, 1000 steps", 1.5, 1000, False),
)


def train_segmenter(data: Path, size: tuple[int, int], epochs: int, num_classes: int):
    """A U-Net trained on the real train split (Dice loss, Adam 1e-3)."""
    ds = Dataset(data)
    pairs = PairCache(size).pairs(ds, ds.split("train"))
    config = TrainConfig(encoder="resnet18", encoder_weights=None, epochs=epochs, batch_size=16, lr=1e-3)
    torch.manual_seed(0)
    model = build_model("Unet", num_classes, config)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    loss_fn, loader = build_loss(config.loss), make_loader(pairs, config.batch_size, train=True, seed=0)
    for _ in range(epochs):
        train_epoch(model, loader, loss_fn, optimizer, torch.device("cpu"))
    return model, config


def iou_against_masks(model, dataset: Path, size: tuple[int, int], num_classes: int) -> tuple[float, float]:
    """(mIoU macro over classes, IoU of the defect classes micro) of the predictions vs the dataset's masks."""
    ds = Dataset(dataset)
    pairs = PairCache(size).pairs(ds, ds.stems)
    stats = predict_stats(model, make_loader(pairs, 16, train=False, seed=0), num_classes, torch.device("cpu"))
    scores = reduce_stats(*stats)["iou"]
    defects = reduce_stats(*stats, classes=range(1, num_classes))["iou"]
    return scores["macro"], defects["micro"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--budget-seconds",
        type=float,
        default=300.0,
        help="Training time of the base model (finetuning: a third more).",
    )
    parser.add_argument("--images", type=int, default=160)
    parser.add_argument("--size", default="32")
    parser.add_argument(
        "--model",
        default="tiny",
        help="tiny: SPADE hidden 32; small's 128-channel SPADE convs cost ~15 s a step on 2 shared cores.",
    )
    parser.add_argument("--num", type=int, default=16, help="Test masks to sample (one image each per setting).")
    parser.add_argument("--seg-epochs", type=int, default=15)
    parser.add_argument("--out", type=Path, default=Path("mask-fidelity"))
    add_json_option(parser)
    a = parser.parse_args()
    data = a.out / "data"
    if not data.exists():
        defectsynth.prepare("toy", data, num=a.images, size=a.size)
    ds = Dataset(data)
    size, num_classes = ds.read(ds.stems[0]).size, ds.manifest.num_classes
    options = dict(
        cond="mask",
        target="image",
        model=a.model,
        batch_size=16,
        lr=5e-4,
        epochs=10**6,
        checkpoint_every=10**9,
        preview_every=0,
        split="train",
    )
    steps = steps_for_budget(data, a.out / "calibrate", a.budget_seconds, options)
    started = time.perf_counter()
    base = defectsynth.train(data, out=a.out / "run-base", max_steps=steps, **options)
    ft = defectsynth.train(
        data, out=a.out / "run-ft", max_steps=max(10, steps // 3), finetune=base, drop_rate=0.2, **options
    )
    trained = time.perf_counter() - started
    seg, _ = train_segmenter(data, size, a.seg_epochs, num_classes)
    test = ds.split("test")[: a.num]
    conditions = a.out / "conditions"
    if not conditions.exists():
        from defectsynth.data import Manifest
        from defectsynth.formats.dataset import DatasetWriter

        with DatasetWriter(conditions, Manifest("conditions", ds.manifest.classes)) as writer:
            for stem in test:
                writer.add(ds.read(stem))
            writer.commit()
    print(
        f"toy {a.images} images at {a.size}px, model {a.model}: {steps} steps + {max(10, steps // 3)} finetuning steps "
        f"(drop rate 0.2) in {trained:.0f} s; segmenter U-Net/resnet18 {a.seg_epochs} epochs; {len(test)} test masks"
    )
    print(f"{'setting':>22}  {'mIoU':>6}  {'defect IoU':>10}  {'seconds':>7}")
    real = iou_against_masks(seg, conditions, size, num_classes)
    print(f"{'real test images':>22}  {real[0]:6.3f}  {real[1]:10.3f}  {'':>7}")
    results: dict = {
        "steps": steps,
        "train_seconds": trained,
        "real": {"miou": real[0], "defect_iou": real[1]},
        "settings": {},
    }
    for label, guidance, n, rescale in SETTINGS:
        out = a.out / f"synthetic-g{guidance}-{n}{'r' if rescale else ''}"
        t0 = time.perf_counter()
        defectsynth.sample(
            ft, out=out, conditions=str(conditions), steps=n, rescale=rescale, guidance=guidance, overwrite=True
        )
        miou, defect = iou_against_masks(seg, out, size, num_classes)
        print(f"{label:>22}  {miou:6.3f}  {defect:10.3f}  {time.perf_counter() - t0:7.1f}")
        results["settings"][label] = {"miou": miou, "defect_iou": defect, "seconds": time.perf_counter() - t0}
    write_results(a.json, results)


if __name__ == "__main__":
    main()
