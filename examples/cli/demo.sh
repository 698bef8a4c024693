#!/usr/bin/env bash
# The demo pipeline step by step (what `defectsynth demo` runs): toy data -> box-guided joint model ->
# samples for the train boxes -> SAE/EBR -> filter -> balancing plan -> evaluate.
set -euo pipefail
OUT=${1:-demo-cli}

defectsynth prepare toy --out "$OUT/data" --num 240 --size 32
defectsynth train "$OUT/data" --out "$OUT/run" --cond basd --target joint --model tiny \
    --prediction v --batch-size 16 --lr 2e-3 --max-steps 2000 --checkpoint-every 1000 --preview-every 20
defectsynth sample "$OUT/run" --conditions "$OUT/data:train" --scheduler ddim --steps 50 --out "$OUT/synthetic"
defectsynth metrics sae ebr --synthetic "$OUT/synthetic" --json "$OUT/metrics.json"
defectsynth filter "$OUT/synthetic" --by boxes --clip-labels --out "$OUT/filtered"
defectsynth balance "$OUT/data" --split train --plan-out "$OUT/plan.json"
defectsynth evaluate --real "$OUT/data" --synthetic "$OUT/filtered" --out "$OUT/evaluate" \
    --models unet --encoder resnet18 --encoder-weights none --loss dice+ce \
    --size 32 --budget steps --epochs 15 --batch-size 16 --lr 1e-3 --repeats 2 --mix "R=all,S=0" --mix "R=all,S=R"
