#!/usr/bin/env bash
# Filtering a synthetic dataset folder. The toy dataset stands in for one here: its boxes/ are the
# conditions and its masks/ the "generated" masks. Same pipeline as examples/api/filter.py.
set -euo pipefail
OUT=${OUT:-out/examples}

defectsynth prepare toy --out "$OUT/toy" --num 60 --size 64 --overwrite --no-progress

# BASD paper, section 4.3: labels outside the boxes of their class become background; reject
# samples with more than 5% of their defect pixels outside their boxes or with an empty box
defectsynth filter "$OUT/toy" --out "$OUT/toy-boxes" --by boxes --clip-labels --max-sae 0.05 --drop-empty-boxes \
    --overwrite --no-progress

# thesis, section 6.1: a U-Net trained on the real train split keeps the 30 pairs it agrees with
# most (tiny settings so this runs in seconds on a CPU; the defaults are resnet34/imagenet/50 epochs)
defectsynth filter "$OUT/toy" --out "$OUT/toy-top30" --by segmenter --real "$OUT/toy" --top-k 30 \
    --encoder resnet18 --encoder-weights none --epochs 3 --overwrite --no-progress

# reuse that network (saved in toy-top30/segmenter/) and rank by cross-entropy instead
defectsynth filter "$OUT/toy" --out "$OUT/toy-ce" --by segmenter --segmenter "$OUT/toy-top30/segmenter" --score ce \
    --keep-fraction 0.5 --overwrite --no-progress
