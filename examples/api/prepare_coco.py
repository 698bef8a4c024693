"""Any COCO instances export; same as examples/cli/prepare_coco.sh.

Usage: python examples/api/prepare_coco.py instances.json IMAGES_DIR
"""

import sys

import defectsynth

manifest = defectsynth.prepare(
    "coco", "data/coco", annotations=sys.argv[1], images=sys.argv[2], size="256", progress=True
)
print(manifest.stats["images"], "images")
