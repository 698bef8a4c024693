#!/usr/bin/env bash
# Your own images + masks. One subfolder per class, defect-free images in good/.
# Usage: examples/cli/prepare_masks.sh PATH/TO/parts
set -euo pipefail
defectsynth prepare masks --source "${1:?folder with one subfolder per class}" --class-from-folder \
    --background-folder good --min-box-area 4 --size 256 --out data/parts
