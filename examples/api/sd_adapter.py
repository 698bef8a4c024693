"""Controllable Stable Diffusion augmentation from Python: the same steps as examples/cli/sd_adapter.sh.

    python examples/api/sd_adapter.py [DATASET] [OUT]

Needs a GPU, ``pip install 'defectsynth[sd]'`` and the weights downloaded as in docs/sd-adapter.md
(set MODELS to their parent folder, default ``models``). The generation plan comes from
``defectsynth balance DATASET --split train --plan-out OUT/plan.json`` when that file exists;
otherwise every training image is redrawn once.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

import defectsynth
from defectsynth.sd_backend import (
    blend_priors,
    build_prompt,
    canny_prior,
    class_prompt,
    filter_by_clip,
    mask_prior,
    sample_sd,
)
from defectsynth.sd_backend.prompts import classes_in_mask

data = Path(sys.argv[1] if len(sys.argv) > 1 else "data/voc")
out = Path(sys.argv[2] if len(sys.argv) > 2 else "demo/sd_adapter")
models = Path(os.environ.get("MODELS", "models"))
plan = out / "plan.json"

# What the model is given for one image: the blended prior (eq. 4) and the appended prompt.
dataset = defectsynth.Dataset(data)
sample = dataset.read(dataset.split("train")[0])
prior = blend_priors(canny_prior(sample.image), mask_prior(sample.mask), (0.7, 0.9))
prompt = build_prompt(class_prompt(classes_in_mask(sample.mask), dataset.manifest.class_names), "a photo")
print(f"{sample.stem}: prior covers {100 * np.mean(prior > 0):.1f}% of the pixels, prompt {prompt!r}")

synth = sample_sd(
    f"{data}:train", out / "synth", models / "sdxl-base", adapter=models / "t2i-lineart-sdxl",
    plan=plan if plan.is_file() else None, prior="lineart", prior_weights=models / "annotators", blend="0.7,0.9",
    captioner=models / "blip2-opt-2.7b", steps=30, seed=0, overwrite=True,
)  # fmt: skip
kept = filter_by_clip(synth, out / "synth-clip", models / "clip-vit-large-patch14", keep_fraction=0.5, overwrite=True)
print(
    f"synthetic: {len(defectsynth.Dataset(synth))} images in {synth}; after the CLIP filter: "
    f"{len(defectsynth.Dataset(kept))} in {kept}"
)
