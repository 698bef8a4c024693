#!/usr/bin/env bash
# Any COCO instances export (polygons or RLE).
# Usage: examples/cli/prepare_coco.sh instances.json IMAGES_DIR
set -euo pipefail
defectsynth prepare coco --annotations "${1:?instances json}" --images "${2:?image folder}" --size 256 --out data/coco
