#!/usr/bin/env bash
# Class balancing (VOC paper, Algorithm 1): a generation plan, and merging real + synthetic data.
# Same pipeline as examples/api/balance.py.
set -euo pipefail
OUT=${OUT:-out/examples}

defectsynth prepare toy --out "$OUT/toy" --num 60 --size 64 --overwrite --no-progress

# the plan: which train images to generate from, how often (n_balance auto: about as many
# generations as real train images); then `defectsynth sample RUN --plan "$OUT/plan.json"`
defectsynth balance "$OUT/toy" --plan-out "$OUT/plan.json" --no-progress
defectsynth balance "$OUT/toy" --n-balance 40 --plan-out "$OUT/plan-40.json" --no-progress

# a stand-in synthetic folder: other toy pictures under stems of their own (sample's output
# stems, <condition>-<k>, never clash with the real ones)
defectsynth prepare toy --out "$OUT/toy-seed1" --num 60 --size 64 --seed 1 --overwrite --no-progress
rm -rf "$OUT/standin-src" && mkdir -p "$OUT/standin-src/images" "$OUT/standin-src/masks"
for image in "$OUT"/toy-seed1/images/*.png; do
  name=$(basename "$image")
  cp "$image" "$OUT/standin-src/images/syn-$name"
  cp "$OUT/toy-seed1/masks/$name" "$OUT/standin-src/masks/syn-$name"
done
defectsynth prepare masks --source "$OUT/standin-src" --classes scratch,spot,crack,stain --size 64 \
    --out "$OUT/standin" --overwrite --no-progress

# merge everything, or only the samples that bring the classes closest to balance
defectsynth balance "$OUT/toy" --with "$OUT/standin" --out "$OUT/toy+standin" --overwrite --no-progress
defectsynth balance "$OUT/toy" --with "$OUT/standin" --n-balance auto --out "$OUT/toy+balanced" --overwrite --no-progress
