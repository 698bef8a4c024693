"""``sample``: draw a synthetic dataset folder from a trained run.

Output folder (an ordinary dataset folder, ``"synthetic": true``)::

    <out>/
      dataset.json               classes, stats and provenance in "source" (written at the end)
      images/<stem>.png          generated RGB (target mask: the mask in class colours)
      masks/<stem>.png           generated mask decoded from the analog bits (not for target image)
      boxes/<stem>.json          the condition boxes (unconditional joint/mask: boxes of the mask)
      .sampling/settings.json    the settings, so that a rerun resumes only an identical request
      .sampling/<stem>.json      per sample: index, condition stem, invalid mask codes (written last)

Sample ``i`` uses generators seeded by (seed, i) for its initial noise and every sampling step,
so the output does not depend on batch size, process count or interruptions. Conditional runs use
each condition up to ``ceil(num / #conditions)`` times (round k uses every condition once, in
order, until ``num`` samples are planned; without ``num``, each once), stems
``<condition stem>-<k>``; unconditional runs write ``num`` samples ``sample-<i>``.
"""

from __future__ import annotations

import logging
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers.utils.torch_utils import randn_tensor

from defectsynth.data import Box, Dataset, Manifest
from defectsynth.data.files import read_json, write_image, write_json, write_mask
from defectsynth.data.model import ClassInfo
from defectsynth.data.resize import resize_sample
from defectsynth.data.writer import DatasetStats
from defectsynth.diffusion.conditioning import condition_tensor, tensor_to_image
from defectsynth.diffusion.models import Layout
from defectsynth.diffusion.previews import class_palette
from defectsynth.diffusion.processes import make_state
from defectsynth.diffusion.schedules import DEFAULT_STEPS, Sampler, make_sampler
from defectsynth.diffusion.losses import predicted_x0
from defectsynth.diffusion.training import derived_seed, network_input
from defectsynth.encoding import boxes_from_mask, decode_bits
from defectsynth.errors import DatasetError, OptionError, OutputExistsError
from defectsynth.progress import make_progress

logger = logging.getLogger(__name__)


# -- the run --------------------------------------------------------------------------------------
@dataclass
class Run:
    """A trained run folder: run.json and its network."""

    root: Path
    info: dict[str, Any]

    @classmethod
    def open(cls, root: str | Path) -> "Run":
        root = Path(root)
        if not (root / "run.json").is_file():
            raise DatasetError("not a run folder: run.json is missing (create one with `defectsynth train`)", root)
        return cls(root, read_json(root / "run.json"))

    @property
    def args(self) -> dict[str, Any]:
        return self.info["args"]

    @property
    def prediction(self) -> str:
        """What the network predicts: epsilon (runs before the option existed), sample or v."""
        return self.args.get("prediction", "epsilon")

    @property
    def layout(self) -> Layout:
        return Layout(**self.info["layout"])

    @property
    def classes(self) -> list[ClassInfo]:
        return [ClassInfo(c["id"], c["name"], tuple(c["color"])) for c in self.info["classes"]]

    def load_unet(self, ema: bool = True):
        from diffusers import UNet2DModel

        folder = self.root / "unet_ema" if ema and (self.root / "unet_ema").is_dir() else self.root / "unet"
        if not (folder / "config.json").is_file():
            raise DatasetError("the run has no weights yet (unet/ appears after its first epoch)", self.root)
        return UNet2DModel.from_pretrained(folder).eval().requires_grad_(False)


# -- the denoising loop ---------------------------------------------------------------------------
def sample_generators(seed: int, indices: list[int]) -> list[torch.Generator]:
    """One CPU generator per sample, seeded by (seed, sample index)."""
    return [torch.Generator().manual_seed(derived_seed(seed, i, 0x5A3F)) for i in indices]


@torch.no_grad()
def denoise(
    model, layout: Layout, sampler: Sampler, cond: torch.Tensor, generators: list[torch.Generator], guidance: float = 1.0,
    prediction: str = "epsilon",
) -> torch.Tensor:
    """Run the reverse process; returns (B, C_t, H, W) samples in [-1, 1].

    cond: (B, C_c, H, W) on the model's device (C_c = 0 for unconditional runs). With ``guidance``
    != 1 the network also sees the null (zero) condition and the predicted channels (epsilon, x_0
    or v: ``prediction``) are combined as out_u + s * (out_c - out_u) (classifier-free guidance,
    not applied to variance channels). With self-conditioning (``layout.self_cond_channels``) the
    network sees the x_0 estimate of the previous step (zeros at the first).
    """
    device = cond.device
    b, (h, w) = len(generators), cond.shape[-2:]
    c = layout.target_channels
    x = randn_tensor((b, c, h, w), generator=generators, device=device, dtype=torch.float32)
    x = x * sampler.scheduler.init_noise_sigma
    guided = guidance != 1.0
    cond_in = torch.cat([cond, torch.zeros_like(cond)]) if guided else cond
    estimate = torch.zeros_like(x) if layout.self_cond_channels else None
    for t in sampler.timesteps:
        x_in = torch.cat([x, x]) if guided else x
        sc_in = None if estimate is None else (torch.cat([estimate, estimate]) if guided else estimate)
        out = model(network_input(x_in, sc_in, cond_in), sampler.model_time(t).to(device)).sample
        if guided:
            out_c, out_u = out.chunk(2)
            eps = out_u[:, :c] + guidance * (out_c[:, :c] - out_u[:, :c])
            out = torch.cat([eps, out_c[:, c:]], dim=1)
        if estimate is not None:
            estimate = predicted_x0(prediction, out[:, :c], x, t.reshape(1).repeat(b).to(device), sampler.scheduler.alphas_cumprod)
        if not sampler.passes_variance:
            out = out[:, :c]
        x = sampler.scheduler.step(out, t, x, generator=generators).prev_sample
    return x.clamp(-1.0, 1.0)


def decode(x: torch.Tensor, target: str, num_classes: int, classes: list[ClassInfo]) -> tuple[np.ndarray, np.ndarray | None, int]:
    """One (C_t, H, W) sample -> (RGB uint8 (H, W, 3), mask uint8 (H, W) or None, invalid codes)."""
    mask, invalid = None, 0
    if target in ("joint", "mask"):
        bits = x[3:] if target == "joint" else x
        mask, invalid = decode_bits(bits.permute(1, 2, 0).float().cpu().numpy(), num_classes)
    if target == "mask":
        return class_palette(classes)[mask], mask, invalid
    return tensor_to_image(x[:3]), mask, invalid


# -- the plan -------------------------------------------------------------------------------------
@dataclass
class Job:
    index: int
    stem: str
    condition: str | None
    boxes: list[Box]


def parse_conditions(text: str | None, run: Run) -> tuple[Path, str | None]:
    """``DATASET[:split]`` -> (dataset folder, split); default: the run's training dataset and split."""
    if text is None:
        return Path(run.info["dataset"]["path"]), run.info["dataset"]["split"]
    path, split = Path(text), None
    if not path.exists() and ":" in text:
        head, tail = text.rsplit(":", 1)
        path, split = Path(head), tail or None
    if not (path / "dataset.json").is_file():
        raise OptionError(f"--conditions: {path} is not a dataset folder (expected DATASET[:split])")
    return path, split


def plan_jobs(run: Run, conditions: str | None, num: int | None) -> tuple[list[Job], dict[str, Any]]:
    """Every sample to draw, in index order, and the ``conditions`` provenance entry."""
    if num is not None and num < 1:
        raise OptionError(f"--num: must be >= 1, got {num}")
    if run.args["cond"] == "none":
        if num is None:
            raise OptionError("--num is required for an unconditional run (--cond none)")
        if conditions is not None:
            raise OptionError("--conditions cannot be used with an unconditional run (--cond none): it takes no boxes")
        return [Job(i, f"sample-{i:06d}", None, []) for i in range(num)], {"dataset": None, "split": None}
    path, split = parse_conditions(conditions, run)
    ds = Dataset(path)
    stems = ds.select(split)
    if not stems:
        raise OptionError(f"--conditions: no images in {path}" + (f" split {split}" if split else ""))
    size = tuple(run.info["size"])
    boxes = {stem: resize_sample(ds.read(stem), size).boxes for stem in stems}  # boxes at the run's size
    reps = 1 if num is None else math.ceil(num / len(stems))
    total = len(stems) if num is None else num
    jobs = [Job(k * len(stems) + j, f"{stem}-{k}", stem, boxes[stem]) for k in range(reps) for j, stem in enumerate(stems)]
    jobs = jobs[:total]
    return jobs, {"dataset": str(path.resolve()), "split": split}


# -- the output folder ----------------------------------------------------------------------------
def check_output(out: Path, settings: dict[str, Any], overwrite: bool) -> str:
    """What to do with ``out``: ``"create"``, ``"resume"`` (same settings) or ``"replace"`` (--overwrite).

    Read-only, so every process can check before any of them writes.
    """
    marker = out / ".sampling" / "settings.json"
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return "create"
    same = marker.is_file() and read_json(marker) == settings
    if not overwrite:
        if same:
            return "resume"
        reason = "was written with other settings" if marker.is_file() else "is not a sampling output"
        raise OutputExistsError(f"output folder exists and {reason}: choose another --out or pass --overwrite", out)
    if not (marker.is_file() or (out / "dataset.json").is_file()):
        raise OutputExistsError("--overwrite only replaces a dataset or sampling folder, and this is neither", out)
    return "replace"


def open_output(out: Path, settings: dict[str, Any], action: str) -> None:
    """Main process: (re)create the folder layout and write the settings marker."""
    if action == "replace":
        shutil.rmtree(out)
    for sub in ("images", "boxes", ".sampling"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    write_json(out / ".sampling" / "settings.json", settings)


def write_sample(out: Path, job: Job, image: np.ndarray, mask: np.ndarray | None, boxes: list[Box], invalid: int) -> None:
    """Write one sample's files atomically; its ``.sampling/<stem>.json`` last marks it done."""
    write_image(out / "images" / f"{job.stem}.png", image)
    if mask is not None:
        write_mask(out / "masks" / f"{job.stem}.png", mask)
    write_json(out / "boxes" / f"{job.stem}.json", [b.to_json() for b in boxes])
    write_json(out / ".sampling" / f"{job.stem}.json", {"index": job.index, "condition": job.condition, "invalid_codes": invalid})


def is_done(out: Path, job: Job) -> bool:
    return (out / ".sampling" / f"{job.stem}.json").is_file()


def write_manifest(out: Path, run: Run, jobs: list[Job], settings: dict[str, Any]) -> Manifest:
    """dataset.json with provenance, then statistics read back from the files on disk."""
    manifest = Manifest(name=f"{run.root.name}-samples", classes=run.classes, synthetic=True)
    manifest.source = {
        **settings,
        "images": "mask colours" if run.args["target"] == "mask" else "generated",
        "condition_of": {j.stem: j.condition for j in jobs if j.condition is not None},
    }
    write_json(out / "dataset.json", manifest.to_json())
    written = Dataset(out)
    stats = DatasetStats(manifest.num_classes)
    invalid = 0
    for job in jobs:
        stats.add(written.read(job.stem))
        invalid += read_json(out / ".sampling" / f"{job.stem}.json")["invalid_codes"]
    manifest.stats = {**stats.to_json(manifest), "invalid_mask_pixels": invalid}
    write_json(out / "dataset.json", manifest.to_json())
    return manifest


# -- the command ----------------------------------------------------------------------------------
def sample(
    run: str | Path,
    *,
    out: str | Path,
    conditions: str | None = None,
    num: int | None = None,
    steps: int | None = None,
    rescale: bool = False,
    scheduler: str = "ddpm",
    guidance: float = 1.0,
    seed: int = 0,
    batch_size: int = 16,
    ema: bool = True,
    overwrite: bool = False,
    progress: bool = False,
) -> Manifest:
    """Draw samples from the run folder ``run`` into the synthetic dataset folder ``out``.

    conditions: ``DATASET[:split]`` whose boxes condition the samples (default: the run's training
    dataset and split). steps: default 1000 (ddpm), 50 (ddim), 20 (dpm). Returns the manifest.
    """
    state = make_state()
    the_run = Run.open(run)
    out = Path(out)
    if batch_size < 1:
        raise OptionError(f"--batch-size: must be >= 1, got {batch_size}")
    if guidance != 1.0 and not the_run.args.get("drop_rate"):
        raise OptionError("--guidance needs a run trained with --drop-rate > 0 (classifier-free guidance)")
    make_sampler(scheduler, steps, the_run.args["variance"], rescale, the_run.prediction)  # validates the options
    jobs, cond_source = plan_jobs(the_run, conditions, num)
    settings = {
        "run": str(the_run.root.resolve()), "sampler": scheduler, "steps": steps or DEFAULT_STEPS[scheduler],
        "rescale": rescale, "guidance": guidance, "seed": seed, "ema": ema, "num": num, "conditions": cond_source,
    }
    action = check_output(out, settings, overwrite)
    state.wait_for_everyone()
    if state.is_main_process:
        open_output(out, settings, action)
    state.wait_for_everyone()
    pending = [j for j in jobs if not is_done(out, j)]
    mine = pending[state.process_index :: state.num_processes]
    model = the_run.load_unet(ema).to(state.device)
    draw(model, the_run, out, mine, settings, batch_size, progress and state.is_local_main_process, state.device)
    state.wait_for_everyone()
    manifest = write_manifest(out, the_run, jobs, settings) if state.is_main_process else Manifest("", the_run.classes)
    state.wait_for_everyone()
    return manifest


def draw(model, run: Run, out: Path, jobs: list[Job], settings: dict[str, Any], batch_size: int, progress: bool, device) -> None:
    """Generate and write ``jobs`` in batches."""
    a, layout, size = run.args, run.layout, tuple(run.info["size"])
    bar = make_progress()
    bar.disable = not progress
    with bar:
        task = bar.add_task("sampling", total=len(jobs), status="")
        for start in range(0, len(jobs), batch_size):
            batch = jobs[start : start + batch_size]
            cond = torch.stack([condition_tensor(j.boxes, size, a["cond"], run.info["num_classes"]) for j in batch]).to(device)
            sampler = make_sampler(settings["sampler"], settings["steps"], a["variance"], settings["rescale"], run.prediction)
            x = denoise(model, layout, sampler, cond, sample_generators(settings["seed"], [j.index for j in batch]), settings["guidance"], run.prediction)
            for job, xi in zip(batch, x):
                image, mask, invalid = decode(xi, a["target"], run.info["num_classes"], run.classes)
                boxes = job.boxes if a["cond"] != "none" or mask is None else boxes_from_mask(mask)
                write_sample(out, job, image, mask, boxes, invalid)
            bar.update(task, advance=len(batch))
