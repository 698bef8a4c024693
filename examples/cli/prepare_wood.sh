#!/usr/bin/env bash
# Wood Surface Defects as in the BASD paper: knots merged, 352x128, 70/20/10.
# Usage: examples/cli/prepare_wood.sh PATH/TO/unpacked-wood-archive
set -euo pipefail
defectsynth prepare wood --source "${1:?path to the unpacked archive}" --out data/wood
