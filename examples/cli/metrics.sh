#!/usr/bin/env bash
# Metrics of a dataset folder. The toy dataset stands in for a synthetic one here: its boxes/ are
# the conditions and its masks/ the "generated" masks (toy boxes are exact, so SAE = EBR = 0).
# Same pipeline as examples/api/metrics.py.
set -euo pipefail
OUT=${OUT:-out/examples}

defectsynth prepare toy --out "$OUT/toy" --num 60 --size 64 --overwrite --no-progress

# box alignment (BASD paper eqs. 5-6) and class balance (VOC paper Table 4), tables + JSON
defectsynth metrics sae ebr entropy cir --synthetic "$OUT/toy" --json "$OUT/toy-metrics.json" --no-progress

# class balance of the real training split alone
defectsynth metrics entropy cir --real "$OUT/toy" --split train --no-progress

# texture without any network: the whole toy set (standing in for synthetic images) vs its train split;
# ratios near 1 and distances near 0 mean matching texture (docs/metrics.md#definitions)
defectsynth metrics texture --real "$OUT/toy" --split train --synthetic "$OUT/toy" --hf-cutoff 0.25 --no-progress

# image quality needs pretrained networks: from the libraries' caches (downloaded when online),
# or from safetensors written once with export_weights (docs/metrics.md#weights)
if [ -n "${WEIGHTS_DIR:-}" ]; then
  defectsynth metrics fid kid lpips --synthetic "$OUT/toy" --real "$OUT/toy" --split test \
    --features 64,192 --nets alex,squeeze --weights-dir "$WEIGHTS_DIR" --json "$OUT/toy-quality.json" --no-progress
fi
