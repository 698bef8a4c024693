#!/usr/bin/env bash
# A trained run on the Hugging Face Hub: push it, then sample and finetune from its Hub id. Same
# pipeline as examples/api/pipeline.py. Needs a token with write access (hf auth login) and
# REPO=owner/name; without REPO it stops after training.
set -euo pipefail
OUT=${OUT:-out/examples}

defectsynth prepare toy --out "$OUT/toy" --num 24 --size 32 --overwrite --no-progress
[ -f "$OUT/runs/toy-pipeline/model_index.json" ] || \
    defectsynth train "$OUT/toy" --out "$OUT/runs/toy-pipeline" --model tiny --epochs 2 --batch-size 8 --preview-every 0 --no-progress

if [ -z "${REPO:-}" ]; then echo "set REPO=owner/name to push"; exit 0; fi
defectsynth push "$OUT/runs/toy-pipeline" "$REPO" --private

# anyone with access: the run from its Hub id (downloaded once into the Hugging Face cache)
defectsynth sample "$REPO" --conditions "$OUT/toy:test" --scheduler ddim --steps 20 --out "$OUT/toy-from-hub" --overwrite --no-progress
defectsynth train "$OUT/toy" --finetune "$REPO" --epochs 1 --out "$OUT/runs/toy-from-hub-ft" --no-progress
