"""Filtering a synthetic dataset folder from Python; same pipeline as examples/cli/filter.sh.

The toy dataset stands in for a synthetic one: its boxes/ are the conditions and its masks/ the
"generated" masks.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from defectsynth import prepare
from defectsynth.filtering import filter_dataset

out = Path(os.environ.get("OUT", "out/examples"))
prepare("toy", out / "toy", num=60, size=64, overwrite=True)

# BASD paper, section 4.3: clip labels to their boxes, reject by SAE and empty boxes
boxes = filter_dataset(
    out / "toy", out / "toy-boxes", "boxes", clip_labels=True, max_sae=0.05, drop_empty_boxes=True, overwrite=True
)
print(f"boxes: kept {len(boxes.kept)}, removed {len(boxes.removed)}, pixels clipped {int(boxes.clipped_pixels.sum())}")

# thesis, section 6.1: a U-Net trained on the real train split keeps the 30 best pairs
top = filter_dataset(
    out / "toy",
    out / "toy-top30",
    "segmenter",
    real=out / "toy",
    top_k=30,
    encoder="resnet18",
    encoder_weights=None,
    epochs=3,
    overwrite=True,
)
scores = json.loads((out / "toy-top30" / "scores.json").read_text())["samples"]
best = min(scores, key=lambda stem: scores[stem]["rank"])
print(f"segmenter: kept {len(top.kept)}; best pair {best} (IoU {scores[best]['score']:.3f})")

# reuse the saved network, rank by cross-entropy
ce = filter_dataset(
    out / "toy",
    out / "toy-ce",
    "segmenter",
    segmenter=out / "toy-top30" / "segmenter",
    score="ce",
    keep_fraction=0.5,
    overwrite=True,
)
print(f"ce: kept {len(ce.kept)}, e.g. removed {next(iter(ce.removed.items()))}")
