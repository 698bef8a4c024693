"""Wood Surface Defects as in the BASD paper; same as examples/cli/prepare_wood.sh.

Usage: python examples/api/prepare_wood.py PATH/TO/unpacked-wood-archive
"""

import sys

import defectsynth

manifest = defectsynth.prepare("wood", "data/wood", source_dir=sys.argv[1], progress=True)
print(manifest.stats["images_per_class"])
