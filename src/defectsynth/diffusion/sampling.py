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
:func:`~defectsynth.formats.plan.planned_samples`).
"""

from __future__ import annotations

import hashlib
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from defectsynth.data import Manifest
from defectsynth.data.colors import class_palette
from defectsynth.data.files import write_errors
from defectsynth.diffusion.configs import SampleConfig
from defectsynth.diffusion.denoising import denoise, sample_generators
from defectsynth.diffusion.jobs import Job, job_condition, plan_file_jobs, plan_jobs
from defectsynth.diffusion.losses import scheduler_prediction
from defectsynth.diffusion.models import compile_forward
from defectsynth.diffusion.previews import write_contact_sheet
from defectsynth.diffusion.processes import make_state
from defectsynth.diffusion.sample_folder import my_pending_jobs, write_manifest, write_sample
from defectsynth.diffusion.schedules import DEFAULT_STEPS, make_sampler
from defectsynth.diffusion.trained_run import Run, default_scheduler, paints_into_images, run_defaults
from defectsynth.encoding import boxes_from_mask
from defectsynth.errors import OptionError
from defectsynth.locks import writes_output
from defectsynth.presets import applies_preset
from defectsynth.progress import make_progress
from defectsynth.ranks import one_outcome

logger = logging.getLogger(__name__)


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
    scheduler: str | None = None,
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
    ``num``). scheduler: None = the run's default (:func:`~defectsynth.diffusion.trained_run.default_scheduler`: dpm, or
    ddpm for mask-conditioned runs and ``onto``). steps: default 1000 (ddpm), 50 (ddim), 20 (dpm). rescale / guidance:
    None = the run's defaults (:func:`~defectsynth.diffusion.trained_run.run_defaults`). mask_augment: randomly warp
    each condition mask first. compile: run the network's forward through ``torch.compile``. onto: a folder of images (a
    dataset folder, ``DIR:split`` or plain images) to paint the conditions' boxes into, with a run
    trained with ``--context``; placement: keep | random, where the boxes go (:mod:`inpaint`).
    force_guidance: apply ``guidance`` to a run trained without a drop rate too (its
    null-condition output was never trained; what the thesis did for its non-finetuned ISDM
    models, section 6.2). preset: a paper preset (:mod:`defectsynth.presets`), recorded in
    ``dataset.json`` ``source.preset``. Returns the manifest.
    """
    state = make_state()
    the_run = Run.open(run)
    scheduler = default_scheduler(the_run, onto, rescale) if scheduler is None else scheduler
    steps, rescale, guidance = run_defaults(the_run, scheduler, steps, rescale, guidance)
    out = Path(out)
    if batch_size < 1:
        raise OptionError(f"--batch-size: must be >= 1, got {batch_size}")
    if guidance != 1.0 and not the_run.args.get("drop_rate") and not force_guidance:
        raise OptionError(
            "--guidance needs a run trained with --drop-rate > 0 (classifier-free guidance), or "
            "--force-guidance (the thesis' ISDM models without finetuning)"
        )
    make_sampler(
        scheduler, steps, the_run.args["variance"], rescale, scheduler_prediction(the_run.prediction)
    )  # validates the options
    if placement != "keep" and onto is None:
        raise OptionError("--placement needs --onto: it places boxes in the images painted into")
    if paints_into_images(the_run, onto):
        from defectsynth.diffusion.inpaint import sample_onto

        if mask_augment:
            raise OptionError("--mask-augment needs a mask-conditioned run (--cond mask), not --onto")
        return sample_onto(
            the_run,
            out=out,
            onto=onto,
            conditions=conditions,
            num=num,
            plan=plan,
            placement=placement,
            steps=steps,
            rescale=rescale,
            scheduler=scheduler,
            seed=seed,
            batch_size=batch_size,
            ema=ema,
            overwrite=overwrite,
            compile=compile,
            progress=progress,
        )
    if plan is not None and (num is not None or conditions is not None):
        raise OptionError("--plan chooses the conditions and their number: give it without --num and --conditions")
    if plan is None:
        jobs, cond_source = plan_jobs(the_run, conditions, num, mask_augment, seed)
    else:
        jobs, cond_source = plan_file_jobs(the_run, plan, mask_augment, seed)
    settings = SampleConfig(
        run=str(the_run.root.resolve()),
        sampler=scheduler,
        steps=steps or DEFAULT_STEPS[scheduler],
        rescale=rescale,
        guidance=guidance,
        seed=seed,
        ema=ema,
        num=num,
        conditions=cond_source,
        force_guidance=force_guidance,
        preset=preset,
        plan=None
        if plan is None
        else {"path": str(Path(plan).resolve()), "sha256": hashlib.sha256(Path(plan).read_bytes()).hexdigest()},
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
        draw(
            model,
            the_run,
            out,
            mine,
            settings,
            batch_size,
            progress and state.is_local_main_process,
            state.device,
            autoencoder,
            rows,
        )
    with one_outcome(state):
        manifest = (
            write_manifest(out, the_run, jobs, settings) if state.is_main_process else Manifest("", the_run.classes)
        )
    with one_outcome(state), write_errors(out, "the contact sheet"):
        if state.is_main_process:
            write_contact_sheet(out)  # previews/contact-sheet.png
    return manifest


def draw(
    model,
    run: Run,
    out: Path,
    jobs: list[Job],
    settings: dict[str, Any],
    batch_size: int,
    progress: bool,
    device,
    autoencoder=None,
    rows: int | None = None,
) -> None:
    """Generate and write ``jobs`` in batches (with ``autoencoder``: denoise latents, then decode them);
    ``rows``: the batch shape the networks always see (:func:`~defectsynth.diffusion.denoising.fixed_rows`).

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


def latent_batch(
    model, run: Run, batch: list[Job], settings: dict[str, Any], device, autoencoder, rows: int | None
) -> list:
    """(image, mask, invalid codes) of each job of a run on latents: denoise latents, then decode them."""
    from defectsynth.diffusion.latent import decode_samples, resize_condition

    a, size = run.args, tuple(run.info["size"])
    cond = torch.stack(
        [job_condition(j, size, a["cond"], run.info["num_classes"], a.get("class_fill", "inside")) for j in batch]
    ).to(device)
    sampler = make_sampler(
        settings["sampler"], settings["steps"], a["variance"], settings["rescale"], scheduler_prediction(run.prediction)
    )
    cond = resize_condition(cond, tuple(run.info["latent"]["size"]))
    generators = sample_generators(settings["seed"], [j.index for j in batch])
    x = denoise(model, run.layout, sampler, cond, generators, settings["guidance"], run.prediction, rows)
    return decode_samples(autoencoder, x, a["target"], run.info["num_classes"], class_palette(run.classes), rows)


def finish_writing(writing: Future | None, bar, task) -> None:
    """Wait for the batch being written (its error, if any, is raised here) and count it done."""
    if writing is not None:
        bar.update(task, advance=writing.result())


def write_batch(out: Path, args: dict[str, Any], batch: list[Job], decoded: list) -> int:
    """Write a batch's samples (:func:`~defectsynth.diffusion.sample_folder.write_sample`); returns how many."""
    for job, (image, mask, invalid) in zip(batch, decoded):
        mask = job.mask if args["cond"] == "mask" else mask
        boxes = job.boxes if args["cond"] != "none" or mask is None else boxes_from_mask(mask)
        write_sample(out, job, image, mask, boxes, invalid)
    return len(batch)
