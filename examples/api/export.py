"""Exporting a dataset folder from Python; same pipeline as examples/cli/export.sh."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

from defectsynth import Dataset, export, prepare

out = Path(os.environ.get("OUT", "out/examples"))
prepare("toy", out / "toy", num=40, size=64, overwrite=True)

# COCO instances: one file per split, one images folder
coco = export(out / "toy", out / "toy-coco", to="coco", overwrite=True)
print(f"coco: {coco.images} images, {coco.annotations} instances")
train = json.loads((out / "toy-coco" / "annotations" / "instances_train.json").read_text())
print("categories:", [c["name"] for c in train["categories"]])

# and back: prepare coco gives the same masks
prepare(
    "coco",
    out / "toy-from-coco",
    annotations=out / "toy-coco" / "annotations" / "instances_train.json",
    images=out / "toy-coco" / "images",
    size=64,
    overwrite=True,
)
original, back = Dataset(out / "toy"), Dataset(out / "toy-from-coco")
same = all((back.read(s).mask == original.read(s).mask).all() for s in back.stems)
print(f"round trip: {len(back)} masks, identical: {same}")

# Ultralytics YOLO-seg
yolo = export(out / "toy", out / "toy-yolo", to="yolo-seg", overwrite=True)
print((out / "toy-yolo" / "data.yaml").read_text())

# Hugging Face datasets, when installed
if importlib.util.find_spec("datasets"):
    import datasets

    export(out / "toy", out / "toy-hf", to="hf", overwrite=True)
    print(datasets.load_from_disk(str(out / "toy-hf")))
