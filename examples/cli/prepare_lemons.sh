#!/usr/bin/env bash
# The thesis' Lemons subsets from the published COCO export (folder or zip).
# Usage: examples/cli/prepare_lemons.sh PATH/TO/lemon-dataset[.zip]
set -euo pipefail
SRC=${1:?path to the Lemons dataset folder or zip}
defectsynth prepare lemons --source "$SRC" --binary blemish --size 256 --out data/lemons-blemish
defectsynth prepare lemons --source "$SRC" --classes blemish,illness,mould --size 256 --out data/lemons-bim
