#!/usr/bin/env bash
# Downstream benchmark on toy data: real only vs real + synthetic (a second toy set stands in for
# the output of `defectsynth sample` here; point --synthetic at your sampled dataset instead).
# Same pipeline as examples/api/evaluate.py.
set -euo pipefail
work=${1:-work/evaluate-example}

defectsynth prepare toy --out "$work/real" --num 120 --size 64 --seed 0 --overwrite
defectsynth prepare toy --out "$work/synthetic" --num 120 --size 64 --seed 1 --overwrite

# Small and CPU-friendly; drop the last four options for the thesis' protocol
# (UNet++/FPN/DeepLabV3+, ResNet34 ImageNet, 50 epochs, 256 px, 3 repeats, the seven mixes).
defectsynth evaluate --real "$work/real" --synthetic "$work/synthetic" --out "$work/report" \
    --models unet,fpn --encoder resnet18 --repeats 2 --mix "R=all,S=0;R=all,S=R;R=0,S=R" \
    --encoder-weights none --epochs 6 --size 64 --lr 1e-3

# Run it again: finished cells are skipped. Results: report.md, report.csv, report.json, chart_<model>.png
cat "$work/report/report.md"
