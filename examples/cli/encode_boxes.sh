#!/usr/bin/env bash
# Box conditions for the box-guided model: make a toy dataset, encode its boxes as BASD + C-BASD
# maps with previews, then rebuild the boxes from the masks (for datasets that only have masks).
# The same pipeline in Python: examples/api/encode_boxes.py
set -euo pipefail
out=${1:-demo/encode_boxes}

defectsynth prepare toy --out "$out/toy" --num 40 --size 64 --overwrite
defectsynth encode-boxes "$out/toy" --preview 4
defectsynth encode-boxes "$out/toy" --class-fill nearest --preview 4
defectsynth encode-boxes "$out/toy" --from-masks --min-box-area 4 --preview 4

ls "$out/toy/conditions" | head
echo "previews: $out/toy/conditions/preview/"
