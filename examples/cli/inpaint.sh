#!/usr/bin/env bash
# Paint defects into real images (docs/tutorials/inpaint.md) on toy data: a context model trained on
# 32x32 windows of 96x96 images, then defects painted into the validation images at random places.
set -euo pipefail
OUT=${1:-inpaint-cli}

defectsynth prepare toy --out "$OUT/data" --num 120 --size 96
defectsynth train "$OUT/data" --context --crop 32 --model small --batch-size 16 --lr 5e-4 --max-steps 1500 \
    --out "$OUT/run"
defectsynth sample "$OUT/run" --onto "$OUT/data:val" --conditions "$OUT/data:train" --num 48 --placement random \
    --scheduler ddim --steps 50 --out "$OUT/painted"
# look at $OUT/painted/previews/onto-*.png (input | output | mask overlay), then measure
defectsynth metrics sae ebr --synthetic "$OUT/painted"
defectsynth metrics texture --real "$OUT/data" --split train --synthetic "$OUT/painted"
