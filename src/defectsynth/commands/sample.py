"""``defectsynth sample``: draw a synthetic dataset folder, with one of two backends.

``--backend diffusion`` (default) samples a run trained by ``defectsynth train``
(:func:`defectsynth.diffusion.sampling.sample`); ``--backend sd-adapter`` redraws real images
with SDXL + T2I-Adapter / ControlNet (:func:`defectsynth.sd_backend.generate.sample_sd`).
Options shared by both are defined once; the others are refused with the other backend.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from defectsynth.commands._config import ConfigOpt
from defectsynth.commands._options import OutOpt, OverwriteOpt, ProgressOpt, SeedOpt
from defectsynth.commands._presets import PresetOpt, chosen_preset
from defectsynth.commands._summary import console, print_dataset_summary
from defectsynth.errors import OptionError
from defectsynth.stages.sample import DIFFUSION_ONLY, PRESET_COMMANDS, SD_ONLY, check_run

EXAMPLES = """
[bold]Examples[/] (--backend diffusion, the default: a run from `defectsynth train`)

  defectsynth sample runs/toy-basd --conditions data/toy:test --out synth/toy-test --scheduler ddim --steps 50

  defectsynth sample runs/wood --conditions data/wood:val --num 4000 --steps 1000 --out synth/wood

  defectsynth sample runs/wood --plan plan.json --out synth/wood-balanced   [dim](balance --plan-out)[/]

  defectsynth sample runs/lemons-isdm --steps 300 --rescale --guidance 1.5 --out synth/lemons   [dim](ISDM's sampler)[/]

  defectsynth sample runs/toy-isdm-ft --conditions synth/masks --out synth/toy-isdm   [dim](ISDM defaults: 300 rescaled steps, guidance 1.5)[/]

  defectsynth sample runs/toy-isdm --conditions data/toy:train --num 200 --mask-augment --out synth/aug

  defectsynth sample runs/toy-masks --num 500 --scheduler dpm --steps 20 --out synth/masks   [dim](unconditional)[/]

  defectsynth sample my-org/defectsynth-wood --conditions data/wood:val --out synth/wood   [dim](a run pushed with `defectsynth push`: Hugging Face cache)[/]

  accelerate launch -m defectsynth sample runs/wood --out synth/wood   [dim](conditions split across GPUs; same output)[/]

  defectsynth sample --config sample.yaml --out synth/toy   [dim](options from a TOML/YAML file; the command line wins)[/]

  defectsynth sample runs/wood-paper --preset basd-paper --conditions data/wood:val --out synth/wood-paper   [dim](docs/presets/)[/]

  defectsynth sample runs/lemons-isdm --preset isdm-paper --out synth/lemons   [dim](s = 1.5 also without finetuning: --force-guidance)[/]

  defectsynth sample runs/cracks-context --onto data/cracks-free --conditions data/cracks:train --out synth/painted   [dim](train --context: defects painted into real images)[/]

  defectsynth sample runs/cracks-context --onto photos/ --conditions data/cracks:train --placement random --num 500 --out synth/painted

A rerun with the same options skips the samples already written. Writes previews/contact-sheet.png
(the first 16 samples). Docs: docs/sample.md

[bold]Examples[/] (--backend sd-adapter: SDXL + T2I-Adapter / ControlNet redraw real images, masks kept)

  defectsynth sample --backend sd-adapter --conditions data/voc:train --out synth/voc-sd \\
      --base models/sdxl-base --adapter models/t2i-lineart-sdxl --prior lineart --prior-weights models/annotators

  defectsynth sample --backend sd-adapter --conditions data/parts --out synth/parts-sd \\
      --base models/sdxl-base --controlnet models/controlnet-canny-sdxl --prior canny --captions captions.jsonl

  defectsynth sample --backend sd-adapter --plan plan.json --out synth/voc-sd ...   [dim](balance --plan-out: its dataset and split)[/]

  defectsynth sample --backend sd-adapter --preset voc-paper --conditions data/voc:train --out synth/voc-sd --base models/sdxl-base --adapter models/t2i-lineart-sdxl

  defectsynth sample --backend sd-adapter --conditions data/voc:train --out synth/voc-sd \\
      --base stabilityai/stable-diffusion-xl-base-1.0 --adapter TencentARC/t2i-adapter-lineart-sdxl-1.0 --prior canny   [dim](Hub ids: downloaded once into the Hugging Face cache)[/]

Writes previews of the priors under [cyan]previews/[/]. Docs: docs/sd-adapter.md
"""  # noqa: E501

DIFFUSION, SD = "diffusion backend (default)", "sd-adapter backend"


class Backend(str, Enum):
    diffusion = "diffusion"
    sd_adapter = "sd-adapter"


class Scheduler(str, Enum):
    ddpm = "ddpm"
    ddim = "ddim"
    dpm = "dpm"


class Placement(str, Enum):
    keep = "keep"
    random = "random"


class Prior(str, Enum):
    canny = "canny"
    lineart = "lineart"
    sketch = "sketch"


def _sd(help_text: str, *names: str) -> typer.Option:
    return typer.Option(*names, help=help_text, rich_help_panel=SD)


def _diff(help_text: str, *names: str) -> typer.Option:
    return typer.Option(*names, help=help_text, rich_help_panel=DIFFUSION)


def check_backend_options(ctx: typer.Context, backend: Backend, run: Path | None) -> None:
    """One-line errors for RUN and the options that the chosen backend does not take, named as typed
    (the stage sees only values: an option typed with its default value is refused here)."""
    check_run(backend.value, run)
    foreign, owner = (SD_ONLY, "sd-adapter") if backend is Backend.diffusion else (DIFFUSION_ONLY, "diffusion")
    flags = {p.name: "/".join(p.opts + p.secondary_opts) for p in ctx.command.params}
    # by name: typer vendors its own click, whose ParameterSource is not click's
    given = [
        flags[name]
        for name in foreign
        if getattr(ctx.get_parameter_source(name), "name", "DEFAULT") not in ("DEFAULT", "DEFAULT_MAP")
    ]
    if given:
        raise OptionError(f"{', '.join(given)}: only with --backend {owner} (this is --backend {backend.value})")


def sample_command(
    ctx: typer.Context,
    out: OutOpt,
    run: Annotated[
        Optional[Path],
        typer.Argument(
            metavar="RUN",
            help=(
                "Run folder written by `defectsynth train`, or a run pushed to the Hub (owner/name; diffusion "
                "backend only)."
            ),
            show_default=False,
        ),
    ] = None,
    backend: Annotated[
        Backend,
        typer.Option("--backend", help="diffusion: sample RUN; sd-adapter: redraw the --conditions images with SDXL."),
    ] = Backend.diffusion,
    conditions: Annotated[
        Optional[str],
        typer.Option(
            "--conditions",
            help=(
                "DATASET[:split]: whose boxes (or masks, for --cond mask runs) condition the samples "
                "(diffusion; default: the run's training data) or whose images are redrawn (sd-adapter; "
                "default: the --plan's dataset)."
            ),
        ),
    ] = None,
    plan: Annotated[
        Optional[Path],
        typer.Option(
            "--plan",
            help=(
                "Generation plan from `balance --plan-out` (which condition images, how often). Diffusion: "
                "instead of --conditions and --num."
            ),
        ),
    ] = None,
    steps: Annotated[
        Optional[int],
        typer.Option(
            "--steps", help="Sampling steps. Default: 1000 (ddpm), 50 (ddim), 20 (dpm); sd-adapter 30 (the paper)."
        ),
    ] = None,
    guidance: Annotated[
        Optional[float],
        typer.Option(
            "--guidance",
            help=(
                "Classifier-free guidance scale; needs a run trained with --drop-rate. Default: 1.5 for a "
                "mask-conditioned run finetuned with a drop rate (ISDM), else 1.0; sd-adapter 7.5."
            ),
            show_default=False,
        ),
    ] = None,
    seed: SeedOpt = 0,
    batch_size: Annotated[
        Optional[int],
        typer.Option(
            "--batch-size",
            help=(
                "Images per forward pass. Reruns with the same --batch-size give the same bytes (on any "
                "number of processes); another --batch-size changes pixels by up to one level "
                "(docs/sample.md). Default: 16; sd-adapter 1."
            ),
        ),
    ] = None,
    overwrite: OverwriteOpt = False,
    progress: ProgressOpt = True,
    num: Annotated[
        Optional[int],
        _diff("Number of samples (conditions are reused round by round). Default: one per condition.", "--num"),
    ] = None,
    rescale: Annotated[
        Optional[bool],
        _diff(
            "ISDM's sampler: a fresh N-step schedule, betas x T/N, model fed t*T/N. Default: on for "
            "mask-conditioned runs (with --steps 300).",
            "--rescale/--no-rescale",
        ),
    ] = None,
    mask_augment: Annotated[
        bool,
        _diff(
            "Randomly rotate, shift, scale and flip each condition mask first (mask-conditioned runs).",
            "--mask-augment",
        ),
    ] = False,
    scheduler: Annotated[
        Optional[Scheduler],
        _diff(
            "ddpm (respaced), ddim or dpm (DPM-Solver++). Default: dpm (20 steps) for box-guided and "
            "unconditional runs; ddpm for mask-conditioned runs (ISDM: 300 rescaled steps), --rescale and "
            "--onto.",
            "--scheduler",
        ),
    ] = None,
    ema: Annotated[bool, _diff("Use the EMA weights when the run has them.", "--ema/--no-ema")] = True,
    onto: Annotated[
        Optional[str],
        _diff(
            "Paint the defects into these images (a run trained with --context): a dataset folder, DIR:split "
            "or a folder of plain images, any size; the output equals them outside the boxes' region "
            "(docs/sample.md#onto-painting-into-real-images).",
            "--onto",
        ),
    ] = None,
    placement: Annotated[
        Placement,
        _diff(
            "With --onto: keep the condition boxes at their (scaled) positions, or move each to a random free "
            "place (seeded; a box without a free place is left out, never painted over the image's own defects).",
            "--placement",
        ),
    ] = Placement.keep,
    compile: Annotated[
        bool,
        _diff(
            "Run the network through torch.compile (compiles first; measure before use, docs/benchmarks.md).",
            "--compile",
        ),
    ] = False,
    base: Annotated[
        Optional[Path],
        _sd(
            "SDXL pipeline: a local folder or a Hub id, e.g. stabilityai/stable-diffusion-xl-base-1.0 (required).",
            "--base",
        ),
    ] = None,
    adapter: Annotated[
        Optional[Path],
        _sd("T2I-Adapter: a local folder or a Hub id, e.g. TencentARC/t2i-adapter-lineart-sdxl-1.0.", "--adapter"),
    ] = None,
    controlnet: Annotated[
        Optional[Path],
        _sd(
            "ControlNet instead of --adapter: a local folder or a Hub id, e.g. diffusers/controlnet-canny-sdxl-1.0.",
            "--controlnet",
        ),
    ] = None,
    num_per_condition: Annotated[int, _sd("Without --plan: redraws per condition image.", "--num-per-condition")] = 1,
    prior: Annotated[Prior, _sd("Image prior: lineart (paper default), canny, sketch.", "--prior")] = Prior.lineart,
    prior_weights: Annotated[
        Optional[Path],
        _sd(
            "Folder with the detector safetensors: lineart.safetensors and/or sketch.safetensors "
            "(docs/sd-adapter.md#priors).",
            "--prior-weights",
        ),
    ] = None,
    blend: Annotated[str, _sd("w1,w2 of V = w1*prior(image) + w2*prior(mask) (paper eq. 4).", "--blend")] = "0.7,0.9",
    captions: Annotated[Optional[Path], _sd('JSON lines {"stem": ..., "caption": ...}.', "--captions")] = None,
    captioner: Annotated[
        Optional[Path],
        _sd("Captioning model: a local folder or a Hub id, e.g. Salesforce/blip2-opt-2.7b.", "--captioner"),
    ] = None,
    prompt_template: Annotated[
        Optional[str],
        _sd("Prompt with {classes} and/or {caption}; default '{caption}; {classes}'.", "--prompt-template"),
    ] = None,
    negative_prompt: Annotated[Optional[str], _sd("Negative prompt for every image.", "--negative-prompt")] = None,
    conditioning_scale: Annotated[float, _sd("Adapter / ControlNet conditioning scale.", "--conditioning-scale")] = 1.0,
    resolution: Annotated[
        int, _sd("Longer side the model draws at (SDXL: 1024); outputs take the condition's size.", "--resolution")
    ] = 1024,
    device: Annotated[str, _sd("auto, cpu, cuda, cuda:1 ...", "--device")] = "auto",
    dtype: Annotated[str, _sd("auto (float16 on GPU), float32, float16, bfloat16.", "--dtype")] = "auto",
    preview: Annotated[int, _sd("Write prior previews of the first N condition images.", "--preview")] = 8,
    config: ConfigOpt = None,
    force_guidance: Annotated[
        bool,
        _diff(
            "Apply --guidance also to a run trained without --drop-rate (its null-condition output was never "
            "trained): what the thesis did for its ISDM models without finetuning (section 6.2).",
            "--force-guidance",
        ),
    ] = False,
    preset: PresetOpt = None,
) -> None:
    check_backend_options(ctx, backend, run)
    from defectsynth.stages.sample import sample

    options = dict(
        conditions=conditions, num=num, plan=plan, steps=steps, rescale=rescale,
        scheduler=None if scheduler is None else scheduler.value, guidance=guidance, mask_augment=mask_augment,
        onto=onto, placement=placement.value, seed=seed, batch_size=batch_size, ema=ema, overwrite=overwrite,
        compile=compile, progress=progress, force_guidance=force_guidance, base=base, adapter=adapter,
        controlnet=controlnet, num_per_condition=num_per_condition, prior=prior.value, prior_weights=prior_weights,
        blend=blend, captions=captions, captioner=captioner, prompt_template=prompt_template,
        negative_prompt=negative_prompt, conditioning_scale=conditioning_scale, resolution=resolution, device=device,
        dtype=dtype, preview=preview,
    )  # fmt: skip
    foreign = SD_ONLY if backend is Backend.diffusion else DIFFUSION_ONLY  # left to the stage's defaults
    manifest = sample(
        run,
        out=out,
        backend=backend.value,
        **{k: v for k, v in options.items() if k not in foreign},
        preset=chosen_preset(preset, PRESET_COMMANDS[backend.value]),
    )
    if backend is Backend.sd_adapter or manifest.stats:
        print_dataset_summary(manifest, out)
    invalid = (manifest.stats or {}).get("invalid_mask_pixels", 0)
    if invalid:
        console.print(f"mask pixels with codes beyond the class count (written as background): {invalid:,}")


def register(app: typer.Typer) -> None:
    app.command(
        "sample",
        help=(
            "Draw a synthetic image + mask dataset: from a trained run (diffusion) or by redrawing real "
            "images (sd-adapter)."
        ),
        epilog=EXAMPLES,
    )(sample_command)
