"""The thesis' Lemons subsets from the published COCO export (folder or zip); same as examples/cli/prepare_lemons.sh.

Usage: python examples/api/prepare_lemons.py PATH/TO/lemon-dataset[.zip]
"""

import sys

import defectsynth

source = sys.argv[1]
binary = defectsynth.prepare(
    "lemons", "data/lemons-blemish", source_dir=source, binary="blemish", size="256", progress=True
)
multi = defectsynth.prepare(
    "lemons", "data/lemons-bim", source_dir=source, classes="blemish,illness,mould", size="256", progress=True
)
print(binary.stats["images"], "binary blemish images;", multi.stats["images_per_class"])
