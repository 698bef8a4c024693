#!/usr/bin/env bash
# Exporting a dataset folder for other tools: COCO instances (mmdet/mmseg, detectron2), Ultralytics
# YOLO-seg, and a Hugging Face datasets folder. Same pipeline as examples/api/export.py.
set -euo pipefail
OUT=${OUT:-out/examples}

defectsynth prepare toy --out "$OUT/toy" --num 40 --size 64 --overwrite --no-progress

# annotations/instances_{train,val,test}.json + images/
defectsynth export "$OUT/toy" --to coco --out "$OUT/toy-coco" --overwrite --no-progress

# back into a dataset folder: the masks come back exactly (ignore pixels become background)
defectsynth prepare coco --annotations "$OUT/toy-coco/annotations/instances_train.json" --images "$OUT/toy-coco/images" \
    --size 64 --out "$OUT/toy-from-coco" --overwrite --no-progress

# data.yaml + images/<split>/ + labels/<split>/ (yolo segment train data=$OUT/toy-yolo/data.yaml)
defectsynth export "$OUT/toy" --to yolo-seg --out "$OUT/toy-yolo" --overwrite --no-progress

# a DatasetDict folder for datasets.load_from_disk, when `datasets` is installed (pip install 'defectsynth[hf]')
if python -c "import datasets" 2>/dev/null; then
    defectsynth export "$OUT/toy" --to hf --out "$OUT/toy-hf" --overwrite --no-progress
fi
