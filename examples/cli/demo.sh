#!/usr/bin/env bash
# The demo pipeline step by step: toy data -> box-guided joint model -> samples for the test boxes.
set -euo pipefail
OUT=${1:-demo-cli}

defectsynth prepare toy --out "$OUT/data" --num 240 --size 32
defectsynth train "$OUT/data" --out "$OUT/run" --cond basd --target joint --model small \
    --batch-size 16 --lr 5e-4 --max-steps 1200 --checkpoint-every 400 --preview-every 20
defectsynth sample "$OUT/run" --conditions "$OUT/data:test" --scheduler ddim --steps 50 --out "$OUT/synthetic"
