"""Your own images + masks, one subfolder per class; same as examples/cli/prepare_masks.sh.

Usage: python examples/api/prepare_masks.py PATH/TO/parts
"""

import sys

import defectsynth

manifest = defectsynth.prepare(
    "masks",
    "data/parts",
    source_dir=sys.argv[1],
    class_from_folder=True,
    background_folder="good",
    min_box_area=4,
    size="256",
    progress=True,
)
print(manifest.stats["boxes_per_class"])
