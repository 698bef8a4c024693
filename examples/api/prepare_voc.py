"""PASCAL VOC 2012 segmentation; same as examples/cli/prepare_voc.sh.

Usage: python examples/api/prepare_voc.py PATH/TO/VOCdevkit/VOC2012
"""

import sys

import defectsynth

manifest = defectsynth.prepare("voc", "data/voc", source_dir=sys.argv[1], size="256", progress=True)
print(manifest.stats["images"], "images")
