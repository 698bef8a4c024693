"""Box conditions for the box-guided model, from Python: the same steps as examples/cli/encode_boxes.sh.

python examples/api/encode_boxes.py [OUT]
"""

from __future__ import annotations

import sys
from pathlib import Path

import defectsynth
from defectsynth.data.model import boxes_to_array
from defectsynth.encoding import basd_maps, condition_channels
from defectsynth.encoding.conditions import encode_boxes, read_conditions

out = Path(sys.argv[1] if len(sys.argv) > 1 else "demo/encode_boxes") / "toy"

defectsynth.prepare("toy", out, num=40, size="64", overwrite=True)
summary = encode_boxes(out, preview=4)
encode_boxes(out, class_fill="nearest", preview=4)
summary = encode_boxes(out, from_masks=True, min_box_area=4, preview=4)
print(f"{summary.maps} maps in {summary.conditions_dir}, previews: {[p.name for p in summary.previews]}")

# The cache holds exactly what the library computes on the fly.
dataset = defectsynth.Dataset(out)
sample = dataset.read(next(stem for stem in dataset.stems if dataset.read_boxes(stem)))
cached = read_conditions(out / "conditions" / f"{sample.stem}.npz")
xyxy, classes = boxes_to_array(sample.boxes)
basd, cbasd = basd_maps(xyxy, classes, *sample.size)
assert (cached["basd"] == basd).all() and (cached["cbasd"] == cbasd).all()

# What the model is conditioned on: BASD + analog bits of C-BASD, (1 + bits, H, W).
channels = condition_channels(xyxy, classes, *sample.size, num_classes=dataset.manifest.num_classes)
print(f"{sample.stem}: {len(sample.boxes)} boxes -> condition tensor {tuple(channels.shape)}")
