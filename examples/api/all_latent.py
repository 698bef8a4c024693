"""All-Latent (Lemons thesis ch. 6) from Python: mask generator -> ISDM image generator -> pairs.

Same steps as examples/cli/all_latent.sh.  Run: python examples/api/all_latent.py [OUT] [AUTOENCODER_DIR]
(AUTOENCODER_DIR: a local diffusers AutoencoderKL/VQModel folder for latent diffusion.)
"""

import sys
from pathlib import Path

import defectsynth

out = Path(sys.argv[1] if len(sys.argv) > 1 else "all-latent-api")
latent = sys.argv[2] if len(sys.argv) > 2 else None
data = out / "data"
defectsynth.prepare("toy", data, num=240, size="32")
common = dict(model="small", batch_size=16, lr=5e-4, latent=latent, progress=True)
masks = defectsynth.train(data, out=out / "masks", cond="none", target="mask", max_steps=1200, **common)
isdm = defectsynth.train(data, out=out / "isdm", cond="mask", target="image", max_steps=1200, **common)
isdm_ft = defectsynth.train(
    data, out=out / "isdm-ft", cond="mask", target="image", max_steps=400, finetune=isdm, drop_rate=0.2, **common
)
defectsynth.sample(masks, out=out / "masks-synth", num=1000, scheduler="dpm", steps=20, progress=True)
manifest = defectsynth.sample(
    isdm_ft, out=out / "synthetic", conditions=str(out / "masks-synth"), progress=True
)  # 300 rescaled steps, s=1.5
augmented = defectsynth.sample(
    isdm_ft, out=out / "synthetic-aug", conditions=f"{data}:train", num=1000, mask_augment=True, progress=True
)
print(manifest.stats)
