"""Metrics of a dataset folder from Python; same pipeline as examples/cli/metrics.sh.

The toy dataset stands in for a synthetic one: its boxes/ are the conditions and its masks/ the
"generated" masks. Set WEIGHTS_DIR to a folder written by ``export_weights`` to add FID/KID/LPIPS.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from defectsynth import Dataset, prepare
from defectsynth.data.model import boxes_to_array
from defectsynth.metrics import compute_metrics, sae_ebr_counts

out = Path(os.environ.get("OUT", "out/examples"))
prepare("toy", out / "toy", num=60, size=64, overwrite=True)

result = compute_metrics(["sae", "ebr", "entropy", "cir"], synthetic=out / "toy")
print(json.dumps({k: result[k]["all"] for k in ("sae", "ebr")}), result["entropy"]["synthetic"]["all"])

# the same counts, one mask at a time (e.g. a training preview), after moving every mask 3 px right
dataset = Dataset(out / "toy")
total = None
for stem in dataset.stems:
    sample = dataset.read(stem)
    shifted = np.roll(sample.mask, 3, axis=1)
    counts = sae_ebr_counts(shifted, *boxes_to_array(sample.boxes), num_classes=dataset.manifest.num_classes)
    total = counts if total is None else total + counts
per_class, pooled = total.sae()
print(f"SAE after a 3 px shift: {100 * pooled:.1f}% of defect pixels outside their boxes")

# texture without any network (synthetic / real ratios near 1 = matching), whole images and box crops
texture = compute_metrics(["texture"], synthetic=out / "toy", real=out / "toy", split="train")["texture"]
print({region: round(texture[region]["ratio"]["laplacian_var"], 3) for region in ("image", "boxes")})

if os.environ.get("WEIGHTS_DIR"):
    quality = compute_metrics(
        ["fid", "kid", "lpips"],
        synthetic=out / "toy",
        real=out / "toy",
        split="test",
        features=(64, 192),
        nets=("alex", "squeeze"),
        weights_dir=Path(os.environ["WEIGHTS_DIR"]),
    )
    print(json.dumps(quality, indent=2))
