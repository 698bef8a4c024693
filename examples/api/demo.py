"""The demo pipeline from Python: toy data -> box-guided joint model -> samples for the test boxes.

Same steps as examples/cli/demo.sh.  Run: python examples/api/demo.py [OUT]
"""

import sys
from pathlib import Path

import defectsynth

out = Path(sys.argv[1] if len(sys.argv) > 1 else "demo-api")
defectsynth.prepare("toy", out / "data", num=240, size="32")
run = defectsynth.train(
    out / "data", out=out / "run", cond="basd", target="joint", model="small",
    batch_size=16, lr=5e-4, max_steps=1200, checkpoint_every=400, preview_every=20, progress=True,
)
manifest = defectsynth.sample(run, out=out / "synthetic", conditions=f"{out / 'data'}:test", scheduler="ddim", steps=50, progress=True)
print(manifest.stats)
