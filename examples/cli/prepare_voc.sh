#!/usr/bin/env bash
# PASCAL VOC 2012 segmentation with its official train/val lists.
# Usage: examples/cli/prepare_voc.sh PATH/TO/VOCdevkit/VOC2012
set -euo pipefail
defectsynth prepare voc --source "${1:?VOCdevkit/VOC2012}" --size 256 --out data/voc
