#!/usr/bin/env bash
# Controllable Stable Diffusion augmentation (VOC paper, Che et al.): redraw real images with SDXL +
# a T2I-Adapter under a blended line-art prior and class-appended BLIP-2 prompts, keep the real
# masks, then keep the best images per class by CLIP. Needs a GPU, `pip install 'defectsynth[sd]'`
# and the weights downloaded as in docs/sd-adapter.md (models/...).
# The same pipeline in Python: examples/api/sd_adapter.py
set -euo pipefail
data=${1:-data/voc}
out=${2:-demo/sd_adapter}
models=${MODELS:-models}

# 1. how many redraws of which image: the class-balancing plan (Algorithm 1)
defectsynth balance "$data" --split train --plan-out "$out/plan.json"

# 2. redraw: SDXL + T2I-Adapter (line art), prior blending 0.7/0.9, BLIP-2 caption + class names, 30 steps
defectsynth sample --backend sd-adapter --conditions "$data:train" --plan "$out/plan.json" --out "$out/synth" \
    --base "$models/sdxl-base" --adapter "$models/t2i-lineart-sdxl" \
    --prior lineart --prior-weights "$models/annotators" --blend 0.7,0.9 \
    --captioner "$models/blip2-opt-2.7b" --steps 30 --seed 0 --overwrite

# 3. optional: CLIP post-filter, the best half of each class
defectsynth filter "$out/synth" --by clip --clip-model "$models/clip-vit-large-patch14" --keep-fraction 0.5 --out "$out/synth-clip" --overwrite

echo "synthetic dataset: $out/synth (prior previews in $out/synth/previews/), filtered: $out/synth-clip"
