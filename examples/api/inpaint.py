"""Paint defects into real images (docs/tutorials/inpaint.md) from Python, on toy data.

Same steps as examples/cli/inpaint.sh.  Run: python examples/api/inpaint.py [OUT]
"""

import sys
from pathlib import Path

import defectsynth
from defectsynth.metrics import compute_metrics

out = Path(sys.argv[1] if len(sys.argv) > 1 else "inpaint-api")
data = out / "data"
defectsynth.prepare("toy", data, num=120, size="96")
run = defectsynth.train(
    data, out=out / "run", context=True, crop=32, model="small", batch_size=16, lr=5e-4, max_steps=1500, progress=True
)
manifest = defectsynth.sample(
    run,
    out=out / "painted",
    onto=f"{data}:val",
    conditions=f"{data}:train",
    num=48,
    placement="random",
    seed=0,
    scheduler="ddim",
    steps=50,
    progress=True,
)
print(manifest.stats)  # previews: out/painted/previews/onto-*.png (input | output | mask overlay)
print(compute_metrics(["sae", "ebr"], synthetic=out / "painted"))
print(compute_metrics(["texture"], synthetic=out / "painted", real=data, split="train"))
