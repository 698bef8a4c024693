"""``defectsynth sample RUN``: draw a synthetic dataset folder from a trained run."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from defectsynth.commands._options import OutOpt, OverwriteOpt, ProgressOpt, SeedOpt
from defectsynth.commands._summary import console, print_dataset_summary

EXAMPLES = """
[bold]Examples[/]

  defectsynth sample runs/toy-basd --conditions data/toy:test --out synth/toy-test --scheduler ddim --steps 50

  defectsynth sample runs/wood --conditions data/wood:val --num 4000 --steps 1000 --out synth/wood

  defectsynth sample runs/lemons-isdm --steps 300 --rescale --guidance 1.5 --out synth/lemons   [dim](ISDM's sampler)[/]

  defectsynth sample runs/toy-isdm-ft --conditions synth/masks --out synth/toy-isdm   [dim](ISDM defaults: 300 rescaled steps, guidance 1.5)[/]

  defectsynth sample runs/toy-isdm --conditions data/toy:train --num 200 --mask-augment --out synth/aug

  defectsynth sample runs/toy-masks --num 500 --scheduler dpm --steps 20 --out synth/masks   [dim](unconditional)[/]

  accelerate launch -m defectsynth sample runs/wood --out synth/wood   [dim](conditions split across GPUs; same output)[/]

A rerun with the same options skips the samples already written.
"""


class Scheduler(str, Enum):
    ddpm = "ddpm"
    ddim = "ddim"
    dpm = "dpm"


def sample_command(
    run: Annotated[Path, typer.Argument(help="Run folder written by `defectsynth train`.")],
    out: OutOpt,
    conditions: Annotated[Optional[str], typer.Option("--conditions", help="DATASET[:split] whose boxes (or masks, for --cond mask runs) condition the samples. Default: the run's training data.")] = None,
    num: Annotated[Optional[int], typer.Option("--num", help="Number of samples (conditions are reused round by round). Default: one per condition.")] = None,
    steps: Annotated[Optional[int], typer.Option("--steps", help="Sampling steps. Default: 1000 (ddpm), 50 (ddim), 20 (dpm).")] = None,
    rescale: Annotated[Optional[bool], typer.Option("--rescale/--no-rescale", help="ISDM's sampler: a fresh N-step schedule, betas x T/N, model fed t*T/N. Default: on for mask-conditioned runs (with --steps 300).", show_default=False)] = None,
    scheduler: Annotated[Scheduler, typer.Option("--scheduler", help="ddpm (respaced), ddim or dpm (DPM-Solver++).")] = Scheduler.ddpm,
    guidance: Annotated[Optional[float], typer.Option("--guidance", help="Classifier-free guidance scale; needs a run trained with --drop-rate. Default: 1.5 for a mask-conditioned run finetuned with a drop rate (ISDM), else 1.0.", show_default=False)] = None,
    mask_augment: Annotated[bool, typer.Option("--mask-augment", help="Randomly rotate, shift, scale and flip each condition mask first (mask-conditioned runs).")] = False,
    seed: SeedOpt = 0,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Samples per forward pass (does not change the output).")] = 16,
    ema: Annotated[bool, typer.Option("--ema/--no-ema", help="Use the EMA weights when the run has them.")] = True,
    overwrite: OverwriteOpt = False,
    progress: ProgressOpt = True,
) -> None:
    from defectsynth.diffusion.sampling import sample

    manifest = sample(
        run, out=out, conditions=conditions, num=num, steps=steps, rescale=rescale, scheduler=scheduler.value,
        guidance=guidance, mask_augment=mask_augment, seed=seed, batch_size=batch_size, ema=ema, overwrite=overwrite, progress=progress,
    )
    if manifest.stats:
        print_dataset_summary(manifest, out)
        invalid = manifest.stats.get("invalid_mask_pixels", 0)
        if invalid:
            console.print(f"mask pixels with codes beyond the class count (written as background): {invalid:,}")


def register(app: typer.Typer) -> None:
    app.command("sample", help="Draw a synthetic image + mask dataset from a trained run.", epilog=EXAMPLES)(sample_command)
