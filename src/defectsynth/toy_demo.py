"""``demo``: the whole box-guided pipeline on built-in toy data, in minutes on a CPU.

Folder written::

    <out>/
      demo.json             what was run, with the settings of each stage
      data/                 the toy dataset (prepare toy)
      run/                  the trained box-guided model (train --cond basd --target joint)
      synthetic/            samples for the boxes of the toy test split (sample)
      previews/real.png     real test images: image | mask overlay | boxes
      previews/synthetic.png  the synthetic samples for the same boxes, same columns
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from defectsynth.data import Dataset
from defectsynth.data.files import write_image, write_json
from defectsynth.errors import OutputExistsError

# Settings per variant: the full demo trains for about 8 minutes on 2 CPU cores. With the default
# recipe (x_0 prediction, self-conditioning, mask weight 4) the toy test boxes reach SAE 2.7% and
# EBR 5.7% after 400 steps (docs/recipe-ablation.md); 800 steps leave a margin.
SETTINGS: dict[str, dict[str, Any]] = {
    "full": {
        "prepare": {"num": 240, "size": "32"},
        "train": {"model": "small", "batch_size": 16, "epochs": 1000, "max_steps": 800, "lr": 5e-4, "checkpoint_every": 400, "preview_every": 20},
        "sample": {"scheduler": "ddim", "steps": 50, "batch_size": 32},
    },
    "quick": {
        "prepare": {"num": 12, "size": "16"},
        "train": {"model": "tiny", "batch_size": 4, "epochs": 1, "max_steps": 2, "checkpoint_every": 2, "preview_every": 1},
        "sample": {"scheduler": "ddim", "steps": 2, "batch_size": 8},
    },
}
PREVIEW_ROWS = 8


def demo(out: str | Path = "defectsynth-demo", *, quick: bool = False, seed: int = 0, overwrite: bool = False, progress: bool = False) -> dict[str, Any]:
    """Prepare toy data, train a BASD-conditioned joint model, sample the test boxes, write previews.

    Returns a dict of the folders written (``data``, ``run``, ``synthetic``, ``previews``).
    """
    from defectsynth.data.prepare import prepare
    from defectsynth.diffusion.sampling import sample
    from defectsynth.diffusion.training import train

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise OutputExistsError("output folder exists: choose another --out or pass --overwrite", out)
        if not (out / "demo.json").is_file():
            raise OutputExistsError("--overwrite only replaces a demo folder, and this one has no demo.json", out)
        shutil.rmtree(out)
    settings = SETTINGS["quick" if quick else "full"]
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "demo.json", {"quick": quick, "seed": seed, "settings": settings})
    prepare("toy", out / "data", seed=seed, progress=progress, **settings["prepare"])
    train(out / "data", out=out / "run", cond="basd", target="joint", seed=seed, progress=progress, **settings["train"])
    sample(out / "run", out=out / "synthetic", conditions=f"{out / 'data'}:test", seed=seed, progress=progress, **settings["sample"])
    write_previews(out / "data", out / "synthetic", out / "previews")
    return {"data": out / "data", "run": out / "run", "synthetic": out / "synthetic", "previews": out / "previews"}


def write_previews(real: Path, synthetic: Path, folder: Path) -> None:
    """``real.png`` and ``synthetic.png``: the first test conditions and their samples, row by row."""
    from defectsynth.diffusion.previews import class_palette, preview_grid, preview_row, viewing_scale

    synth = Dataset(synthetic)
    real_ds = Dataset(real)
    palette = class_palette(real_ds.manifest.classes)
    stems = synth.stems[:PREVIEW_ROWS]
    condition_of = synth.manifest.source.get("condition_of", {})
    for name, ds, names in (("synthetic", synth, stems), ("real", real_ds, [condition_of.get(s, s) for s in stems])):
        samples = [ds.read(s) for s in names]
        rows = [preview_row(s.image, s.mask, s.boxes, palette) for s in samples]
        write_image(folder / f"{name}.png", preview_grid(rows, viewing_scale(samples[0].size[0])))
