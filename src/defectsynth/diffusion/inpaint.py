"""``sample RUN --onto DIR``: paint defects into real images with a context run (``train --context``).

The output is an ordinary synthetic dataset folder (the layout of :mod:`sampling`), plus
``previews/onto-<stem>.png`` (input | output | mask overlay) for the first images. Sample ``i``:

1. target image: image ``i mod n`` of the ``--onto`` folder (a dataset folder, ``DIR:split`` or a
   folder of plain images, any sizes); stem ``<image stem>-<i div n>``.
2. boxes: those of condition ``i mod m`` of ``--conditions`` (or the plan's), scaled to the target
   image; ``placement`` ``random`` moves each to a free place (no overlap with the other boxes or the
   image's own, margins included), seeded by (seed, i); a box with no free place is left out (one
   warning; ``source.unplaced`` lists their indices per sample), never painted over the image's own
   defects.
3. windows (:func:`~defectsynth.diffusion.canvas.plan_windows`): windows of the run's size around
   the boxes (several boxes share one where they fit; a box larger than a window is tiled by
   windows overlapping by at least half a window); only the region (the boxes dilated by the run's
   ``context_margin``) changes.
4. all windows of a sample are denoised together on one canvas (:mod:`canvas`, MultiDiffusion): at
   every step the network sees every window, with the known image and the region (the context
   channels); the window outputs are blended with tent weights and the scheduler steps once on the
   canvas; then the known pixels are put back outside the region, noised to the step's level
   (RePaint, Lugmayr et al. 2022, eq. (8): x_{t-1} = m * x_known + (1 - m) * x_unknown). The
   canvas's generator is seeded by (seed, i), so the output does not depend on batch size or
   process count.
5. paste: outside the region the output keeps the input's pixels exactly; a grey run (``--channels
   grey``) paints only the luminance of a colour input, whose colour stays; in the margin band the
   generated pixels are blended into the input (weight rising from 0 at the region's edge to 1 at
   the box); the mask is 0 outside the new boxes inside the region and the input's own mask (0 for
   plain images) outside it.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from defectsynth.checks import check_choice
from defectsynth.data import Box, Dataset, Manifest
from defectsynth.data.colors import class_palette
from defectsynth.data.files import IMAGE_SUFFIXES, read_image, write_errors, write_image, write_json
from defectsynth.data.model import index_by_stem
from defectsynth.data.resize import scale_box
from defectsynth.diffusion.canvas import Area, denoise_areas, plan_windows
from defectsynth.diffusion.conditioning import bits_tensor, condition_tensor, images_to_tensor, to_grey
from defectsynth.diffusion.configs import SampleConfig
from defectsynth.diffusion.context import boxes_in_window, context_tensor, region_mask
from defectsynth.diffusion.denoising import decode
from defectsynth.diffusion.jobs import Job, parse_conditions
from defectsynth.diffusion.losses import scheduler_prediction
from defectsynth.diffusion.previews import PREVIEW_SAMPLES, preview_row, viewing_scale
from defectsynth.diffusion.processes import make_state
from defectsynth.diffusion.sample_folder import my_pending_jobs, write_manifest, write_sample
from defectsynth.diffusion.schedules import DEFAULT_STEPS, make_sampler
from defectsynth.diffusion.trained_run import Run
from defectsynth.errors import DatasetError, OptionError
from defectsynth.formats.dataset import parse_dataset_spec
from defectsynth.formats.plan import plan_dataset, planned_samples, read_plan
from defectsynth.progress import make_progress
from defectsynth.ranks import one_outcome
from defectsynth.seeds import derived_seed

logger = logging.getLogger(__name__)

PLACEMENTS = ("keep", "random")
PLACEMENT_TRIES = 100  # random placement: draws per box before it is left out


# -- the images painted into ----------------------------------------------------------------------
def image_size(path: Path) -> tuple[int, int]:
    """(H, W) of an image file, from its header."""
    try:
        with Image.open(path) as image:
            return image.height, image.width
    except (OSError, ValueError) as err:
        raise DatasetError(f"cannot read the image ({err})", path) from None


@dataclass
class Onto:
    """The ``--onto`` images: a dataset folder (its split) or a folder of plain images."""

    root: Path
    split: str | None
    stems: list[str]
    files: dict[str, Path]
    dataset: Dataset | None = None

    def size(self, stem: str) -> tuple[int, int]:
        return image_size(self.files[stem])

    def boxes(self, stem: str) -> list[Box]:
        return self.dataset.read_boxes(stem) if self.dataset is not None else []

    def read(self, stem: str) -> tuple[np.ndarray, np.ndarray]:
        """(image (H, W, 3) uint8, mask (H, W) uint8: the dataset's, else zeros)."""
        image = read_image(self.files[stem])
        mask = self.dataset.read_mask(stem, image.shape[:2]) if self.dataset is not None else None
        return image, np.zeros(image.shape[:2], np.uint8) if mask is None else mask


def open_onto(text: str | Path, run: Run) -> Onto:
    """``DIR``, ``DIR:split`` (a dataset folder) or a folder of plain images (png, jpg, bmp, tif)."""
    path, split = parse_dataset_spec(text)
    if not path.is_dir():
        raise OptionError(
            f"--onto: {path} is not a folder (expected a dataset folder, DIR:split or a folder of images)"
        )
    if (path / "dataset.json").is_file():
        ds = Dataset(path)
        theirs, ours = ds.manifest.class_names, {c.id: c.name for c in run.classes}
        if theirs != ours:
            raise DatasetError(
                f"--onto: classes {theirs} differ from {ours} of the run {run.root}: use a dataset with the "
                "run's classes, or a folder of plain images",
                ds.root / "dataset.json",
            )
        stems = ds.select(split)
        files = {s: ds.image_path(s) for s in stems}
    else:
        if split is not None:
            raise OptionError(f"--onto: {path} is not a dataset folder, so it has no split {split!r}")
        ds = None
        files = index_by_stem(
            f
            for f in sorted(path.iterdir())
            if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in IMAGE_SUFFIXES
        )
        stems = list(files)
    if not stems:
        raise OptionError(f"--onto: no images in {path}" + (f" split {split}" if split else ""))
    return Onto(path, split, stems, files, ds)


# -- the plan -------------------------------------------------------------------------------------
@dataclass
class OntoJob(Job):
    onto: str = ""
    size: tuple[int, int] = (0, 0)  # (H, W) of the target image
    own: list[Box] | None = None  # the target image's own boxes (a dataset folder)
    unplaced: list[int] | None = None  # placement random: the condition's boxes left out (no free place)


def layouts(
    run: Run, conditions: str | None, num: int | None, plan: str | Path | None, total: int
) -> tuple[Dataset, list[str], dict[str, Any]]:
    """The box layout (a condition stem) of every sample, its dataset and the provenance entry."""
    if plan is not None:
        pairs = planned_samples(read_plan(Path(plan)))
        if not pairs:
            raise DatasetError("the plan lists no generations: nothing to sample", plan)
        folder, split = plan_dataset(Path(plan))
        ds = Dataset(folder)
        chosen = [c for _, c in pairs]
        missing = next((c for c in chosen if c not in set(ds.stems)), None)
        if missing is not None:
            raise DatasetError(f"plan stem {missing!r} is not in the plan's dataset {ds.root}", plan)
    else:
        folder, split = parse_conditions(conditions, run)
        ds = Dataset(folder)
        stems = ds.select(split)
        if not stems:
            raise OptionError(f"--conditions: no images in {folder}" + (f" split {split}" if split else ""))
        chosen = [stems[i % len(stems)] for i in range(num if num is not None else total)]
    theirs, ours = ds.manifest.class_names, {c.id: c.name for c in run.classes}
    if theirs != ours:
        raise DatasetError(
            f"--conditions: classes {theirs} differ from {ours} of the run {run.root}: condition on a dataset "
            "with the run's classes",
            ds.root / "dataset.json",
        )
    return ds, chosen, {"dataset": str(ds.root.resolve()), "split": split}


def place_randomly(
    boxes: list[Box], taken: list[Box], size: tuple[int, int], margin: int, rng: np.random.Generator
) -> tuple[list[Box], list[int]]:
    """``boxes`` moved to random places where, grown by ``margin``, they overlap neither each other nor
    ``taken``, and the indices of the boxes that found no such place in :data:`PLACEMENT_TRIES` draws:
    those are left out, never painted where they were (that may be the image's own defect)."""
    height, width = size
    placed: list[Box] = []
    unplaced: list[int] = []

    def free(b: Box) -> bool:
        x0, y0, x1, y1 = b.x_min - margin, b.y_min - margin, b.x_max + margin, b.y_max + margin
        return all(
            x1 <= o.x_min - margin or o.x_max + margin <= x0 or y1 <= o.y_min - margin or o.y_max + margin <= y0
            for o in taken + placed
        )

    for index, b in enumerate(boxes):
        w, h = b.x_max - b.x_min, b.y_max - b.y_min
        for _ in range(PLACEMENT_TRIES):
            x, y = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
            candidate = Box(b.cls, x, y, x + w, y + h)
            if free(candidate):
                placed.append(candidate)
                break
        else:
            unplaced.append(index)
    return placed, unplaced


def plan_onto_jobs(
    run: Run,
    onto: Onto,
    conditions: str | None,
    num: int | None,
    plan: str | Path | None,
    placement: str,
    seed: int,
) -> tuple[list[OntoJob], dict[str, Any]]:
    """Every sample to draw, in index order, and the ``conditions`` provenance entry."""
    if num is not None and num < 1:
        raise OptionError(f"--num: must be >= 1, got {num}")
    n = len(onto.stems)
    ds, chosen, source = layouts(run, conditions, num, plan, n)
    crop, margin = tuple(run.info["size"]), run.args.get("context_margin", 0)
    sizes: dict[str, tuple[int, int]] = {}
    condition_sizes: dict[str, tuple[int, int]] = {}
    jobs = []
    for i, condition in enumerate(chosen):
        stem = onto.stems[i % n]
        if stem not in sizes:
            sizes[stem] = onto.size(stem)
            if sizes[stem][0] < crop[0] or sizes[stem][1] < crop[1]:
                raise DatasetError(
                    f"image is {sizes[stem][1]}x{sizes[stem][0]}, smaller than the run's crop {crop[1]}x{crop[0]}",
                    onto.files[stem],
                )
        height, width = sizes[stem]
        if condition not in condition_sizes:
            condition_sizes[condition] = image_size(ds.image_path(condition))
        ch, cw = condition_sizes[condition]
        boxes = [scale_box(b, width / cw, height / ch, width, height) for b in ds.read_boxes(condition)]
        own, unplaced = onto.boxes(stem), []
        if placement == "random":
            boxes, unplaced = place_randomly(
                boxes, own, (height, width), margin, np.random.default_rng(derived_seed(seed, i, 0x91AC))
            )
        size = (height, width)
        jobs.append(OntoJob(i, f"{stem}-{i // n}", condition, boxes, onto=stem, size=size, own=own, unplaced=unplaced))
    warn_unplaced(jobs)
    warn_large_boxes(jobs, crop, margin)
    return jobs, source


def warn_large_boxes(jobs: list[OntoJob], crop: tuple[int, int], margin: int) -> None:
    """One warning with the number of boxes that, grown by the margin, do not fit the run's window: the
    windows inside them see none of the image around the box."""
    n_h, n_w = crop
    boxes = [b for j in jobs for b in j.boxes]
    large = [b for b in boxes if b.x_max - b.x_min + 2 * margin > n_w or b.y_max - b.y_min + 2 * margin > n_h]
    if large:
        logger.warning(
            "%d of %d boxes (with the %d px margin) are larger than the run's %dx%d window: the windows inside them "
            "see none of the image around the box, so their surface may not match it; a run trained with a larger "
            "--crop paints such boxes with context",
            len(large),
            len(boxes),
            margin,
            n_w,
            n_h,
        )


def warn_unplaced(jobs: list[OntoJob]) -> None:
    """One warning with the number of boxes that random placement left out, and in how many samples."""
    left = [j for j in jobs if j.unplaced]
    if left:
        count = sum(len(j.unplaced) for j in left)
        total = count + sum(len(j.boxes) for j in jobs)
        logger.warning(
            "--placement random: %d of %d boxes found no free place in their image (clear of its own defects and "
            "the other boxes) and were left out, in %d of %d samples (listed in dataset.json, source.unplaced)",
            count,
            total,
            len(left),
            len(jobs),
        )


def blend_weights(region: np.ndarray, margin: int) -> np.ndarray:
    """(H, W) float32 weight of the generated pixels: 0 outside the region, rising over the margin
    band to 1 at the boxes (the chessboard distance to the nearest pixel outside the region over
    margin + 1: the boxes, grown by margin, are exactly 1)."""
    distance = cv2.distanceTransform(region.astype(np.uint8), cv2.DIST_C, 3)
    return np.clip(distance / (margin + 1), 0.0, 1.0).astype(np.float32)


# -- denoising ------------------------------------------------------------------------------------
def replacer(known: torch.Tensor, region: torch.Tensor, sampler, generators: list[torch.Generator]):
    """``keep(x, i)`` for :func:`~defectsynth.diffusion.denoising.denoise`: x inside ``region`` (B, 1, h, w)
    bool, the ``known`` target (B, C_t, h, w) noised to the level of ``timesteps[i]`` outside it
    (clean after the last step); the noise comes from each sample's own generator."""
    timesteps = sampler.timesteps
    alphas = sampler.scheduler.alphas_cumprod

    def keep(x: torch.Tensor, i: int) -> torch.Tensor:
        if i >= len(timesteps):
            noised = known
        else:
            ab = alphas[timesteps[i]].to(x.device, torch.float32)
            noise = randn_tensor(tuple(known.shape), generator=generators, device=x.device, dtype=torch.float32)
            noised = ab.sqrt() * known + (1.0 - ab).sqrt() * noise
        return torch.where(region, x, noised)

    return keep


@dataclass
class Canvas:
    """One sample being painted: the input, the image and mask painted so far (run channels), its windows."""

    job: OntoJob
    image: np.ndarray  # (H, W, 3) uint8 input
    mask: np.ndarray  # (H, W) uint8 input mask (zeros for plain images)
    painted: np.ndarray  # (H, W, C) uint8 in the run's channels
    painted_mask: np.ndarray  # (H, W) uint8
    windows: list[tuple[int, int]]  # (x0, y0) of the windows covering the region (:func:`plan_windows`)
    invalid: int = 0


def open_canvas(job: OntoJob, onto: Onto, image_channels: int, crop: tuple[int, int], margin: int) -> Canvas:
    image, mask = onto.read(job.onto)
    if image.shape[:2] != job.size:
        raise DatasetError(
            f"image is {image.shape[1]}x{image.shape[0]}, its header said {job.size[1]}x{job.size[0]}",
            onto.files[job.onto],
        )
    painted = to_grey(image[None])[0] if image_channels == 1 else image.copy()
    return Canvas(
        job, image, mask, painted, np.zeros(job.size, np.uint8), plan_windows(job.boxes, job.size, crop, margin)
    )


def canvas_area(c: Canvas, run: Run, margin: int, device) -> Area:
    """The denoising canvas of ``c``: the bounding rectangle of its windows, with the known target
    (the input, mask bits of class 0), the region and every window's condition (boxes and context)."""
    (n_h, n_w), num_classes = tuple(run.info["size"]), run.info["num_classes"]
    x0, y0 = min(x for x, _ in c.windows), min(y for _, y in c.windows)
    x1, y1 = max(x for x, _ in c.windows) + n_w, max(y for _, y in c.windows) + n_h
    region = region_mask(c.job.boxes, c.job.size, margin)
    image_t = images_to_tensor(torch.from_numpy(np.ascontiguousarray(c.painted[y0:y1, x0:x1])).permute(2, 0, 1))
    known = torch.cat([image_t, bits_tensor(c.painted_mask[y0:y1, x0:x1], num_classes)])
    conds = []
    for x, y in c.windows:
        boxes = boxes_in_window(c.job.boxes, x, y, n_w, n_h)
        window, inside = c.painted[y : y + n_h, x : x + n_w], region[y : y + n_h, x : x + n_w]
        conds.append(
            torch.cat(
                [condition_tensor(boxes, (n_h, n_w), run.args["cond"], num_classes), context_tensor(window, inside)]
            )
        )
    windows = [(x - x0, y - y0) for x, y in c.windows]
    return Area(
        x0,
        y0,
        known[None].to(device),
        torch.from_numpy(region[y0:y1, x0:x1])[None, None].to(device),
        windows,
        torch.stack(conds).to(device),
    )


def paint_batch(model, run: Run, canvases: list[Canvas], settings: dict[str, Any], rows: int, device) -> None:
    """Denoise the canvases of a batch together (:func:`~defectsynth.diffusion.canvas.denoise_areas`) and paint their
    regions in; a canvas without boxes (a condition without defects, or every box left out) stays the input."""
    canvases = [c for c in canvases if c.windows]
    if not canvases:
        return
    margin, num_classes, layout = run.args.get("context_margin", 0), run.info["num_classes"], run.layout
    areas = [canvas_area(c, run, margin, device) for c in canvases]
    generators = [
        torch.Generator().manual_seed(derived_seed(settings["seed"], c.job.index, 0, 0x1A7E)) for c in canvases
    ]
    samplers = [
        make_sampler(
            settings["sampler"],
            settings["steps"],
            run.args["variance"],
            settings["rescale"],
            scheduler_prediction(run.prediction),
        )
        for _ in canvases
    ]
    keeps = [replacer(a.known, a.region, s, [g]) for a, s, g in zip(areas, samplers, generators)]
    for c, a, x in zip(
        canvases, areas, denoise_areas(model, layout, samplers, areas, generators, run.prediction, rows, keeps)
    ):
        image, mask, invalid = decode(x, "joint", num_classes, run.classes, layout.image_channels)
        inside = a.region[0, 0].cpu().numpy()
        h, w = inside.shape
        c.painted[a.y0 : a.y0 + h, a.x0 : a.x0 + w][inside] = image[..., : layout.image_channels][inside]
        c.painted_mask[a.y0 : a.y0 + h, a.x0 : a.x0 + w][inside] = mask[inside]
        c.invalid += invalid


def in_colour(painted: np.ndarray, image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8: the painted pixels (H, W, C) in the input's colours. A grey run paints only the
    luminance: each channel of the input moves by the change of its luminance, so the input's hue stays
    (a grey input gets the painted grey exactly)."""
    if painted.shape[2] == 3:
        return painted
    shift = painted.astype(np.int16) - to_grey(image[None])[0].astype(np.int16)
    return np.clip(image.astype(np.int16) + shift, 0, 255).astype(np.uint8)


def finish(c: Canvas, margin: int) -> tuple[np.ndarray, np.ndarray, list[Box]]:
    """(image, mask, boxes) of a painted canvas: the input outside the region, blended in the margin band."""
    region = region_mask(c.job.boxes, c.job.size, margin)
    weight = blend_weights(region, margin)[..., None]
    painted = in_colour(c.painted, c.image)
    blended = np.rint(weight * painted + (1.0 - weight) * c.image).astype(np.uint8)
    image = np.where(region[..., None], blended, c.image)
    mask = np.where(region_mask(c.job.boxes, c.job.size, 0), c.painted_mask, 0).astype(np.uint8)
    mask = np.where(region, mask, c.mask)
    return image, mask, list(c.job.own or []) + c.job.boxes


def draw_onto(
    model,
    run: Run,
    onto: Onto,
    out: Path,
    jobs: list[OntoJob],
    settings: dict[str, Any],
    batch_size: int,
    rows: int,
    progress: bool,
    device,
) -> None:
    """Paint and write ``jobs`` in batches of ``batch_size`` samples."""
    crop, margin = tuple(run.info["size"]), run.args.get("context_margin", 0)
    bar = make_progress()
    bar.disable = not progress
    with bar:
        task = bar.add_task("painting", total=len(jobs), status="")
        for start in range(0, len(jobs), batch_size):
            canvases = [
                open_canvas(j, onto, run.layout.image_channels, crop, margin) for j in jobs[start : start + batch_size]
            ]
            paint_batch(model, run, canvases, settings, rows, device)
            for c in canvases:
                image, mask, boxes = finish(c, margin)
                write_sample(out, c.job, image, mask, boxes, c.invalid)
            bar.update(task, advance=len(canvases))


def write_previews(out: Path, onto: Onto, jobs: list[OntoJob], classes) -> None:
    """``previews/onto-<stem>.png``: input | output | mask overlay, for the first samples."""
    written = Dataset(out)
    palette = class_palette(classes)
    for job in jobs[:PREVIEW_SAMPLES]:
        sample = written.read(job.stem)
        image, _ = onto.read(job.onto)
        output_overlay = preview_row(sample.image, sample.mask, sample.boxes, palette)[:, : 2 * image.shape[1]]
        row = np.concatenate([image, output_overlay], axis=1)
        scale = viewing_scale(row.shape[0])
        if scale > 1:
            row = cv2.resize(row, (row.shape[1] * scale, row.shape[0] * scale), interpolation=cv2.INTER_NEAREST)
        write_image(out / "previews" / f"onto-{job.stem}.png", row)


# -- the command ----------------------------------------------------------------------------------
def sample_onto(
    run: Run,
    *,
    out: Path,
    onto: str | Path | None,
    conditions: str | None,
    num: int | None,
    plan: str | Path | None,
    placement: str,
    steps: int | None,
    rescale: bool,
    scheduler: str,
    seed: int,
    batch_size: int,
    ema: bool,
    overwrite: bool,
    compile: bool,
    progress: bool,
) -> Manifest:
    """:func:`~defectsynth.diffusion.sampling.sample` with ``onto``: paint into the ``onto`` images (module
    docstring)."""
    if not run.args.get("context"):
        raise OptionError(f"--onto needs a run trained with --context; {run.root} was trained without it")
    if onto is None:
        raise OptionError(
            f"--onto is required: {run.root} was trained with --context, it paints defects into given images"
        )
    check_choice("--placement", placement, PLACEMENTS)
    if plan is not None and (num is not None or conditions is not None):
        raise OptionError("--plan chooses the conditions and their number: give it without --num and --conditions")
    state = make_state()
    the_onto = open_onto(onto, run)
    jobs, cond_source = plan_onto_jobs(run, the_onto, conditions, num, plan, placement, seed)
    settings = SampleConfig(
        run=str(run.root.resolve()),
        sampler=scheduler,
        steps=steps or DEFAULT_STEPS[scheduler],
        rescale=rescale,
        guidance=1.0,
        seed=seed,
        ema=ema,
        num=num,
        conditions=cond_source,
        placement=placement,
        onto={"path": str(the_onto.root.resolve()), "split": the_onto.split},
        context_margin=run.args.get("context_margin", 0),
        plan=None
        if plan is None
        else {"path": str(Path(plan).resolve()), "sha256": hashlib.sha256(Path(plan).read_bytes()).hexdigest()},
    ).to_json()
    model = run.load_unet(ema).to(state.device)
    if compile:
        from defectsynth.diffusion.models import compile_forward

        compile_forward(model)
    mine = my_pending_jobs(state, out, settings, overwrite, jobs)
    rows = min(batch_size, len(jobs))
    with one_outcome(state), write_errors(out, "a sample"):
        draw_onto(
            model,
            run,
            the_onto,
            out,
            mine,
            settings,
            batch_size,
            rows,
            progress and state.is_local_main_process,
            state.device,
        )
    with one_outcome(state):
        if not state.is_main_process:
            return Manifest("", run.classes)
        manifest = write_manifest(out, run, jobs, settings)
        manifest.source["onto_of"] = {j.stem: j.onto for j in jobs}
        if placement == "random":
            manifest.source["unplaced"] = {j.stem: j.unplaced for j in jobs if j.unplaced}
        write_json(out / "dataset.json", manifest.to_json())
        write_previews(out, the_onto, jobs, run.classes)
    return manifest
