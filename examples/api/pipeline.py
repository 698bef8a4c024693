"""A trained run as a diffusers pipeline: load it, sample images + masks in memory, save it; same
pipeline as examples/cli/pipeline.sh. Pushing to the Hub needs a token: see the end."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from defectsynth import Box, Dataset, DefectsynthPipeline, prepare, sample, train

out = Path(os.environ.get("OUT", "out/examples"))
prepare("toy", out / "toy", num=24, size=32, overwrite=True)
run = out / "runs" / "toy-pipeline"
if not (run / "model_index.json").is_file():  # a tiny run for the example (a real one trains for hours)
    train(out / "toy", out=run, model="tiny", epochs=2, batch_size=8, preview_every=0)

# plain diffusers works as well once defectsynth.pipeline is imported:
#   import defectsynth.pipeline; from diffusers import DiffusionPipeline; DiffusionPipeline.from_pretrained(run)
pipe = DefectsynthPipeline.from_pretrained(run)  # the EMA weights are its unet
pipe.use_sampler("ddim")  # the sampler of `sample --scheduler ddim`

# one image per list of boxes (class id, half-open pixel box in the run's 32x32)
boxes = [
    [Box(1, 4, 4, 20, 12)],
    [{"class": 2, "box": [10, 10, 30, 30]}],
    Dataset(out / "toy").read_boxes(Dataset(out / "toy").stems[0]),
]
result = pipe(boxes=boxes, num_inference_steps=20, generator=torch.Generator().manual_seed(0), output_type="np")
print(
    "images",
    result.images.shape,
    result.images.dtype,
    "masks",
    result.masks.shape,
    "classes drawn",
    np.unique(result.masks).tolist(),
)

# `defectsynth sample` draws through the same pipeline (docs/pipeline.md: the same pixels for the same seeds)
written = sample(run, out=out / "toy-pipeline-synth", num=2, scheduler="ddim", steps=20, seed=0, overwrite=True)
print("sample wrote", written.stats["images"], "images")

# save_pretrained / from_pretrained round trip (a folder with model_index.json, unet/, scheduler/)
pipe.save_pretrained(out / "toy-pipeline-saved")
again = DefectsynthPipeline.from_pretrained(out / "toy-pipeline-saved").use_sampler("ddim")
same = again(boxes=boxes, num_inference_steps=20, generator=torch.Generator().manual_seed(0), output_type="np")
print("round trip identical:", bool((same.images == result.images).all()))

# to the Hub (needs `hf auth login` or HF_TOKEN; the CLI: defectsynth push RUN REPO_ID):
#   defectsynth.push(run, "my-org/toy-pipeline", private=True)      # the run folder, without checkpoints
#   pipe.push_to_hub("my-org/toy-pipeline")                          # diffusers' way (the EMA unet only)
#   DefectsynthPipeline.from_pretrained("my-org/toy-pipeline")
