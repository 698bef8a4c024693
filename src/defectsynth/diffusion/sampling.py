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
``<condition stem>-<k>``; unconditional runs write ``num`` samples ``sample-<i>``. With a
``balance --plan-out`` plan, condition ``c`` of the plan's dataset is used ``repeats`` times
(stems ``c-0`` .. ``c-<repeats-1>``, indices in plan order; see
:func:`~defectsynth.balancing.planned_samples`).
"""

from __future__ import annotations

import hashlib
import logging
import math
import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers.utils.torch_utils import randn_tensor

from defectsynth.balancing import plan_dataset, planned_samples, read_plan
from defectsynth.data import Box, Dataset, Manifest
from defectsynth.data.files import holds_no_files, read_json, write_errors, remove_temp_leftovers, write_image, write_json, write_mask
from defectsynth.data.model import ClassInfo
from defectsynth.data.resize import resize_sample
from defectsynth.data.writer import DatasetStats, check_replaceable
from defectsynth.diffusion.conditioning import condition_tensor, onehot_tensor, tensor_to_image
from defectsynth.diffusion.configs import SampleConfig
from defectsynth.diffusion.losses import predicted_eps, predicted_x0, scheduler_prediction
from defectsynth.diffusion.mask_augment import MaskAugment
from defectsynth.diffusion.models import Layout, compile_forward
from defectsynth.diffusion.previews import class_palette, write_contact_sheet
from defectsynth.diffusion.processes import make_state
from defectsynth.diffusion.schedules import DEFAULT_STEPS, RESCALE_MIN_STEPS, Sampler, make_sampler
from defectsynth.diffusion.training import derived_seed, network_input, read_run_json, recipe_prediction
from defectsynth.encoding import boxes_from_mask, decode_bits
from defectsynth.errors import DatasetError, OptionError, OutputExistsError
from defectsynth.locks import writes_output
from defectsynth.presets import applies_preset
from defectsynth.progress import make_progress
from defectsynth.ranks import one_outcome

logger = logging.getLogger(__name__)


# -- the run --------------------------------------------------------------------------------------
@dataclass
class Run:
    """A trained run folder: run.json and its network."""

    root: Path
    info: dict[str, Any]

    @classmethod
    def open(cls, root: str | Path) -> "Run":
        from defectsynth.hub import resolve_run

        root = resolve_run(root)  # a Hub id (owner/name): its cached download
        if not (root / "run.json").is_file():
            raise DatasetError("not a run folder: run.json is missing (create one with `defectsynth train`)", root)
        return cls(root, read_run_json(root / "run.json"))

    @property
    def args(self) -> dict[str, Any]:
        return self.info["args"]

    @property
    def prediction(self) -> str | tuple[str, ...]:
        """What the network predicts: epsilon (runs before the option existed), sample or v, or one
        of them per target channel (:func:`~defectsynth.diffusion.training.recipe_prediction`)."""
        return recipe_prediction(self.args, self.layout)

    @property
    def layout(self) -> Layout:
        return Layout(**self.info["layout"])

    @property
    def classes(self) -> list[ClassInfo]:
        return [ClassInfo(c["id"], c["name"], tuple(c["color"])) for c in self.info["classes"]]

    def load_autoencoder(self):
        """The run's autoencoder (``--latent``) or None."""
        if not self.info.get("latent"):
            return None
        from defectsynth.diffusion.latent import Autoencoder

        return Autoencoder.load(self.info["latent"]["path"])

    def load_unet(self, ema: bool = True):
        from defectsynth.diffusion.models import load_network

        folder = self.root / "unet_ema" if ema and (self.root / "unet_ema").is_dir() else self.root / "unet"
        if not (folder / "config.json").is_file():
            raise DatasetError("the run has no weights yet (unet/ appears after its first epoch)", self.root)
        return load_network(folder).eval().requires_grad_(False)


# -- the denoising loop ---------------------------------------------------------------------------
def sample_generators(seed: int, indices: list[int]) -> list[torch.Generator]:
    """One CPU generator per sample, seeded by (seed, sample index)."""
    return [torch.Generator().manual_seed(derived_seed(seed, i, 0x5A3F)) for i in indices]


def pad_rows(x: torch.Tensor, rows: int | None) -> torch.Tensor:
    """``x`` with zero rows appended up to ``rows`` (``None`` or fewer: ``x`` as it is)."""
    if rows is None or len(x) >= rows:
        return x
    return torch.cat([x, x.new_zeros((rows - len(x), *x.shape[1:]))])


def fixed_rows(fn, x: torch.Tensor, rows: int | None) -> torch.Tensor:
    """``fn(x)`` on ``x`` padded with zero rows to ``rows`` (``None``: as it is); the first ``len(x)`` rows.

    Batched convolutions round differently for different batch sizes (about 1e-6), enough to move
    a pixel by one level now and then; with one batch shape a sample's output does not depend on
    which samples share its batch (tested: bit-identical), so at one ``--batch-size`` a partial
    last batch, a rerun into the same folder and every process of a multi-process run give the
    same bytes (another ``--batch-size`` gives another shape).
    """
    return fn(pad_rows(x, rows))[: len(x)]


@torch.no_grad()
def denoise(
    model, layout: Layout, sampler: Sampler, cond: torch.Tensor, generators: list[torch.Generator], guidance: float = 1.0,
    prediction: str = "epsilon", rows: int | None = None, keep=None,
) -> torch.Tensor:
    """Run the reverse process; returns (B, C_t, H, W) samples in [-1, 1].

    cond: (B, C_c, H, W) on the model's device (C_c = 0 for unconditional runs). With ``guidance``
    != 1 the network also sees the null (zero) condition and the predicted channels (epsilon, x_0
    or v: ``prediction``) are combined as out_u + s * (out_c - out_u) (classifier-free guidance,
    not applied to variance channels). With self-conditioning (``layout.self_cond_channels``) the
    network sees the x_0 estimate of the previous step (zeros at the first). rows: each half of
    the network's batch (one half without guidance) is padded to that many rows (:func:`fixed_rows`).
    keep: ``keep(x, i)`` -> x, applied to the initial noise (i = 0) and after step i (i + 1):
    inpainting puts the known pixels back, noised to the level of ``timesteps[i]`` (:mod:`inpaint`).
    """
    device = cond.device
    b, (h, w) = len(generators), cond.shape[-2:]
    c = layout.target_channels
    x = randn_tensor((b, c, h, w), generator=generators, device=device, dtype=torch.float32)
    x = x * sampler.scheduler.init_noise_sigma
    if keep is not None:
        x = keep(x, 0)
    guided = guidance != 1.0
    conds = [cond, torch.zeros_like(cond)] if guided else [cond]  # guidance: the conditional and null halves in one forward
    n = max(b, rows or b)  # rows per half: each half padded on its own keeps every sample at its place
    estimate = torch.zeros_like(x) if layout.self_cond_channels else None
    for i, t in enumerate(sampler.timesteps):
        inputs = torch.cat([pad_rows(network_input(x, estimate, k), n) for k in conds])
        out = model(inputs, sampler.model_time(t).to(device)).sample
        if guided:
            out_c, out_u = out[:b], out[n : n + b]
            eps = out_u[:, :c] + guidance * (out_c[:, :c] - out_u[:, :c])
            out = torch.cat([eps, out_c[:, c:]], dim=1)
        else:
            out = out[:b]
        times = t.reshape(1).repeat(b).to(device)
        if estimate is not None:
            estimate = predicted_x0(prediction, out[:, :c], x, times, sampler.scheduler.alphas_cumprod)
        if not isinstance(prediction, str):  # per-group predictions: the scheduler steps with the noise they imply
            out = torch.cat([predicted_eps(prediction, out[:, :c], x, times, sampler.scheduler.alphas_cumprod), out[:, c:]], dim=1)
        if not sampler.passes_variance:
            out = out[:, :c]
        x = sampler.scheduler.step(out, t, x, generator=generators).prev_sample
        if keep is not None:
            x = keep(x, i + 1)
    return x.clamp(-1.0, 1.0)


def decode(
    x: torch.Tensor, target: str, num_classes: int, classes: list[ClassInfo], image_channels: int = 3,
) -> tuple[np.ndarray, np.ndarray | None, int]:
    """One (C_t, H, W) sample -> (RGB uint8 (H, W, 3), mask uint8 (H, W) or None, invalid codes);
    ``image_channels`` 1: the image channel is grey and written as R = G = B."""
    mask, invalid = None, 0
    if target in ("joint", "mask"):
        bits = x[image_channels:] if target == "joint" else x
        mask, invalid = decode_bits(bits.permute(1, 2, 0).float().cpu().numpy(), num_classes)
    if target == "mask":
        return class_palette(classes)[mask], mask, invalid
    return tensor_to_image(x[:image_channels]), mask, invalid


# -- the plan -------------------------------------------------------------------------------------
@dataclass
class Job:
    index: int
    stem: str
    condition: str | None
    boxes: list[Box]
    mask: np.ndarray | None = None  # cond mask: the (augmented) condition mask, (H, W) uint8


def job_condition(job: Job, size: tuple[int, int], cond: str, num_classes: int, class_fill: str = "inside") -> torch.Tensor:
    """(C_c, H, W) condition of one job: the one-hot mask for cond ``mask``, else the box maps
    (``class_fill``: the run's ``train --class-fill``)."""
    if cond == "mask":
        return onehot_tensor(job.mask, num_classes)
    return condition_tensor(job.boxes, size, cond, num_classes, class_fill)


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


def plan_jobs(run: Run, conditions: str | None, num: int | None, mask_augment: bool = False, seed: int = 0) -> tuple[list[Job], dict[str, Any]]:
    """Every sample to draw, in index order, and the ``conditions`` provenance entry.

    For cond ``mask`` each job carries its condition mask, randomly warped when ``mask_augment``
    (seeded by (seed, sample index)), and the boxes of that mask.
    """
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
    reps = 1 if num is None else math.ceil(num / len(stems))
    total = len(stems) if num is None else num
    pairs = [(f"{stem}-{k}", stem) for k in range(reps) for stem in stems][:total]
    return condition_jobs(run, ds, pairs, mask_augment, seed), {"dataset": str(path.resolve()), "split": split, "mask_augment": mask_augment}


def condition_jobs(run: Run, ds: Dataset, pairs: list[tuple[str, str]], mask_augment: bool = False, seed: int = 0) -> list[Job]:
    """Job ``i`` draws output stem ``pairs[i][0]`` from condition ``pairs[i][1]`` of ``ds``, at the run's size.

    Box-conditioned runs take the condition's boxes. Mask-conditioned runs (cond ``mask``) take its
    mask, randomly warped when ``mask_augment`` (seeded by (seed, sample index)), and that mask's boxes.
    A dataset declaring other classes than the run is refused: its class ids would be read as the run's.
    """
    theirs, ours = ds.manifest.class_names, {c.id: c.name for c in run.classes}
    if theirs != ours:
        raise DatasetError(f"--conditions: classes {theirs} differ from {ours} of the run {run.root}: condition on a dataset with the run's classes", ds.root / "dataset.json")
    cond = run.args["cond"]
    if mask_augment and cond != "mask":
        raise OptionError("--mask-augment needs a mask-conditioned run (--cond mask)")
    if cond == "mask" and not ds.has_masks:
        raise OptionError(f"--conditions: {ds.root} has no masks, which a mask-conditioned run (--cond mask) needs")
    size = tuple(run.info["size"])
    resized = {stem: resize_sample(ds.read(stem), size) for stem in dict.fromkeys(c for _, c in pairs)}
    jobs = [Job(i, stem, c, resized[c].boxes, resized[c].mask if cond == "mask" else None) for i, (stem, c) in enumerate(pairs)]
    if mask_augment:
        augment = MaskAugment()
        for job in jobs:
            job.mask = augment(job.mask, np.random.default_rng(derived_seed(seed, job.index, 0xA06)))
    if cond == "mask":
        for job in jobs:
            job.boxes = boxes_from_mask(job.mask)
    return jobs


def plan_file_jobs(run: Run, plan: str | Path, mask_augment: bool = False, seed: int = 0) -> tuple[list[Job], dict[str, Any]]:
    """The jobs of a ``balance --plan-out`` file (:func:`~defectsynth.balancing.planned_samples`), conditioned
    on its dataset, and the ``conditions`` provenance entry."""
    plan = Path(plan)
    if run.args["cond"] == "none":
        raise OptionError("--plan cannot be used with an unconditional run (--cond none): it takes no boxes")
    pairs = planned_samples(read_plan(plan))
    if not pairs:
        raise DatasetError("the plan lists no generations: nothing to sample", plan)
    folder, split = plan_dataset(plan)
    ds = Dataset(folder)
    known = set(ds.stems)
    missing = next((c for _, c in pairs if c not in known), None)
    if missing is not None:
        raise DatasetError(f"plan stem {missing!r} is not in the plan's dataset {ds.root}", plan)
    jobs = condition_jobs(run, ds, pairs, mask_augment, seed)
    return jobs, {"dataset": str(ds.root.resolve()), "split": split, "mask_augment": mask_augment}


# -- the output folder ----------------------------------------------------------------------------
def check_output(out: Path, settings: dict[str, Any], overwrite: bool) -> str:
    """What to do with ``out``: ``"create"``, ``"resume"`` (same settings) or ``"replace"`` (--overwrite).

    Read-only, so every process can check before any of them writes.
    """
    marker = out / ".sampling" / "settings.json"
    if not out.exists() or (out.is_dir() and holds_no_files(out)):  # new, or left by a run killed at once
        return "create"
    same = marker.is_file() and read_json(marker) == settings
    if not overwrite:
        if same:
            return "resume"
        reason = "was written with other settings" if marker.is_file() else "is not a sampling output"
        raise OutputExistsError(f"output folder exists and {reason}: choose another --out or pass --overwrite", out)
    if not (marker.is_file() or (out / "dataset.json").is_file()):
        raise OutputExistsError("--overwrite only replaces a dataset or sampling folder, and this is neither", out)
    check_replaceable(out)
    return "replace"


def open_output(out: Path, settings: dict[str, Any], action: str) -> None:
    """Main process: (re)create the folder layout and write the settings marker."""
    if action == "replace":
        shutil.rmtree(out)
    elif out.is_dir():
        remove_temp_leftovers(out)  # half-written files of a killed run: its samples are redrawn
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


def my_pending_jobs(state, out: Path, settings: dict[str, Any], overwrite: bool, jobs: list[Job]) -> list[Job]:
    """Check ``out`` on every process, (re)create it on the main process (:func:`check_output`,
    :func:`open_output`), then this process's share of the jobs not done yet."""
    with one_outcome(state):
        action = check_output(out, settings, overwrite)
    with one_outcome(state):
        if state.is_main_process:
            open_output(out, settings, action)
    pending = [j for j in jobs if not is_done(out, j)]
    return pending[state.process_index :: state.num_processes]


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
@applies_preset("sample")
@writes_output("sample", "out")
def sample(
    run: str | Path,
    *,
    out: str | Path,
    conditions: str | None = None,
    num: int | None = None,
    plan: str | Path | None = None,
    steps: int | None = None,
    rescale: bool | None = None,
    scheduler: str = "ddpm",
    guidance: float | None = None,
    mask_augment: bool = False,
    onto: str | Path | None = None,
    placement: str = "keep",
    seed: int = 0,
    batch_size: int = 16,
    ema: bool = True,
    overwrite: bool = False,
    compile: bool = False,
    progress: bool = False,
    force_guidance: bool = False,
    preset: str | dict[str, Any] | None = None,
) -> Manifest:
    """Draw samples from the run folder ``run`` into the synthetic dataset folder ``out``.

    conditions: ``DATASET[:split]`` whose boxes condition the samples (default: the run's training
    dataset and split; for a mask-conditioned run their masks, which the output carries as its
    masks). plan: a ``balance --plan-out`` file to draw instead (not with ``conditions`` or
    ``num``). steps: default 1000 (ddpm), 50 (ddim), 20 (dpm). rescale / guidance: None = the
    run's defaults (:func:`run_defaults`). mask_augment: randomly warp each condition mask first.
    compile: run the network's forward through ``torch.compile``. onto: a folder of images (a
    dataset folder, ``DIR:split`` or plain images) to paint the conditions' boxes into, with a run
    trained with ``--context``; placement: keep | random, where the boxes go (:mod:`inpaint`).
    force_guidance: apply ``guidance`` to a run trained without a drop rate too (its
    null-condition output was never trained; what the thesis did for its non-finetuned ISDM
    models, section 6.2). preset: a paper preset (:mod:`defectsynth.presets`), recorded in
    ``dataset.json`` ``source.preset``. Returns the manifest.
    """
    state = make_state()
    the_run = Run.open(run)
    steps, rescale, guidance = run_defaults(the_run, scheduler, steps, rescale, guidance)
    out = Path(out)
    if batch_size < 1:
        raise OptionError(f"--batch-size: must be >= 1, got {batch_size}")
    if guidance != 1.0 and not the_run.args.get("drop_rate") and not force_guidance:
        raise OptionError("--guidance needs a run trained with --drop-rate > 0 (classifier-free guidance), or --force-guidance (the thesis' ISDM models without finetuning)")
    make_sampler(scheduler, steps, the_run.args["variance"], rescale, scheduler_prediction(the_run.prediction))  # validates the options
    if placement != "keep" and onto is None:
        raise OptionError("--placement needs --onto: it places boxes in the images painted into")
    if onto is not None or the_run.args.get("context"):  # painting into given images: diffusion/inpaint.py
        from defectsynth.diffusion.inpaint import sample_onto

        if mask_augment:
            raise OptionError("--mask-augment needs a mask-conditioned run (--cond mask), not --onto")
        return sample_onto(
            the_run, out=out, onto=onto, conditions=conditions, num=num, plan=plan, placement=placement, steps=steps, rescale=rescale,
            scheduler=scheduler, seed=seed, batch_size=batch_size, ema=ema, overwrite=overwrite, compile=compile, progress=progress,
        )
    if plan is not None and (num is not None or conditions is not None):
        raise OptionError("--plan chooses the conditions and their number: give it without --num and --conditions")
    if plan is None:
        jobs, cond_source = plan_jobs(the_run, conditions, num, mask_augment, seed)
    else:
        jobs, cond_source = plan_file_jobs(the_run, plan, mask_augment, seed)
    settings = SampleConfig(
        run=str(the_run.root.resolve()), sampler=scheduler, steps=steps or DEFAULT_STEPS[scheduler], rescale=rescale, guidance=guidance,
        seed=seed, ema=ema, num=num, conditions=cond_source, force_guidance=force_guidance, preset=preset,
        plan=None if plan is None else {"path": str(Path(plan).resolve()), "sha256": hashlib.sha256(Path(plan).read_bytes()).hexdigest()},
    ).to_json()
    model = the_run.load_unet(ema).to(state.device)  # broken weights are refused before anything is written
    if compile:
        compile_forward(model)
    autoencoder = the_run.load_autoencoder()
    if autoencoder is not None:
        autoencoder.model.to(state.device)
    # one writer per output folder (@writes_output: the main process holds its lock); a failure on
    # any process (a full disk, a broken write) stops every process with the same line
    mine = my_pending_jobs(state, out, settings, overwrite, jobs)
    # one batch shape for every batch of every process and rerun: the same bytes however the jobs fall
    rows = min(batch_size, len(jobs))
    with one_outcome(state), write_errors(out, "a sample"):
        draw(model, the_run, out, mine, settings, batch_size, progress and state.is_local_main_process, state.device, autoencoder, rows)
    with one_outcome(state):
        manifest = write_manifest(out, the_run, jobs, settings) if state.is_main_process else Manifest("", the_run.classes)
    with one_outcome(state), write_errors(out, "the contact sheet"):
        if state.is_main_process:
            write_contact_sheet(out)  # previews/contact-sheet.png
    return manifest


def run_defaults(run: Run, scheduler: str, steps: int | None, rescale: bool | None, guidance: float | None) -> tuple[int | None, bool, float]:
    """(steps, rescale, guidance) with the left-out (None) ones filled in.

    A mask-conditioned run (ISDM) with the ddpm scheduler: ``--steps 300 --rescale``, and guidance
    1.5 when it was trained (or finetuned) with a drop rate; every other run: the scheduler's
    default steps, no rescale, guidance 1.0. Rescaling is not the default for a step count too small
    for it (``RESCALE_MIN_STEPS`` or fewer): such runs use the respaced schedule instead.
    """
    isdm = run.args["cond"] == "mask"
    if steps is None and isdm and scheduler == "ddpm":
        steps = 300
    if rescale is None:
        rescale = isdm and scheduler == "ddpm" and (steps or DEFAULT_STEPS[scheduler]) > RESCALE_MIN_STEPS
    if guidance is None:
        guidance = 1.5 if isdm and run.args.get("drop_rate") else 1.0
    return steps, rescale, guidance


def draw(
    model, run: Run, out: Path, jobs: list[Job], settings: dict[str, Any], batch_size: int, progress: bool, device, autoencoder=None,
    rows: int | None = None,
) -> None:
    """Generate and write ``jobs`` in batches (with ``autoencoder``: denoise latents, then decode them);
    ``rows``: the batch shape the networks always see (:func:`fixed_rows`).

    A batch's files are written (PNG encoding, fsync) by one writer thread while the next batch
    denoises; at most one batch waits, and a writing error stops the loop at the next batch.
    """
    from defectsynth.pipeline import draw_jobs, sampling_pipeline

    a = run.args
    pipe = sampling_pipeline(model, run, settings) if autoencoder is None else None
    bar = make_progress()
    bar.disable = not progress
    with bar, ThreadPoolExecutor(max_workers=1, thread_name_prefix="defectsynth-writer") as writer:
        task = bar.add_task("sampling", total=len(jobs), status="")
        writing: Future | None = None
        for start in range(0, len(jobs), batch_size):
            if writing is not None and writing.done():  # a failed write stops the loop before more denoising
                finish_writing(writing, bar, task)
                writing = None
            batch = jobs[start : start + batch_size]
            if pipe is not None:  # pixel space: the model step is DefectsynthPipeline's (defectsynth.pipeline)
                decoded = draw_jobs(pipe, batch, settings, rows)
            else:
                decoded = latent_batch(model, run, batch, settings, device, autoencoder, rows)
            finish_writing(writing, bar, task)
            writing = writer.submit(write_batch, out, a, batch, decoded)
        finish_writing(writing, bar, task)


def latent_batch(model, run: Run, batch: list[Job], settings: dict[str, Any], device, autoencoder, rows: int | None) -> list:
    """(image, mask, invalid codes) of each job of a run on latents: denoise latents, then decode them."""
    from defectsynth.diffusion.latent import decode_samples, resize_condition

    a, size = run.args, tuple(run.info["size"])
    cond = torch.stack([job_condition(j, size, a["cond"], run.info["num_classes"], a.get("class_fill", "inside")) for j in batch]).to(device)
    sampler = make_sampler(settings["sampler"], settings["steps"], a["variance"], settings["rescale"], scheduler_prediction(run.prediction))
    cond = resize_condition(cond, tuple(run.info["latent"]["size"]))
    generators = sample_generators(settings["seed"], [j.index for j in batch])
    x = denoise(model, run.layout, sampler, cond, generators, settings["guidance"], run.prediction, rows)
    return decode_samples(autoencoder, x, a["target"], run.info["num_classes"], class_palette(run.classes), rows)


def finish_writing(writing: Future | None, bar, task) -> None:
    """Wait for the batch being written (its error, if any, is raised here) and count it done."""
    if writing is not None:
        bar.update(task, advance=writing.result())


def write_batch(out: Path, args: dict[str, Any], batch: list[Job], decoded: list) -> int:
    """Write a batch's samples (:func:`write_sample`); returns how many."""
    for job, (image, mask, invalid) in zip(batch, decoded):
        mask = job.mask if args["cond"] == "mask" else mask
        boxes = job.boxes if args["cond"] != "none" or mask is None else boxes_from_mask(mask)
        write_sample(out, job, image, mask, boxes, invalid)
    return len(batch)
