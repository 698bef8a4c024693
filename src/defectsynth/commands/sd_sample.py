"""``defectsynth sample --backend sd-adapter``: redraw real images with SDXL + T2I-Adapter / ControlNet.

Not registered on its own: the lead mounts :func:`sd_sample_command` (or calls it from ``sample``
when ``--backend sd-adapter`` is given) with :func:`register`. The core is
:func:`defectsynth.controllable.generate.sample_sd`; option names equal its arguments.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from defectsynth.commands._options import OutOpt, OverwriteOpt, ProgressOpt, SeedOpt

EXAMPLES = """
[bold]Examples[/]

  defectsynth sample --backend sd-adapter --conditions data/voc:train --out synth/voc-sd \\
      --base models/sdxl-base --adapter models/t2i-lineart-sdxl --prior lineart --prior-weights models/annotators

  defectsynth sample --backend sd-adapter --conditions data/parts --out synth/parts-sd \\
      --base models/sdxl-base --controlnet models/controlnet-canny-sdxl --prior canny --captions captions.jsonl

  defectsynth sample --backend sd-adapter --conditions data/voc:train --plan plan.json --out synth/voc-sd ...   [dim](balance --plan-out)[/]

Writes a synthetic dataset (images redrawn, the real masks and boxes kept) with previews of the priors under [cyan]previews/[/]. Docs: docs/sd-adapter.md
"""


class Prior(str, Enum):
    canny = "canny"
    lineart = "lineart"
    sketch = "sketch"


ConditionsOpt = Annotated[str, typer.Option("--conditions", help="DATASET or DATASET:split whose images are redrawn (masks kept).")]
BaseOpt = Annotated[Path, typer.Option("--base", help="Local SDXL pipeline folder, e.g. stabilityai/stable-diffusion-xl-base-1.0.")]
AdapterOpt = Annotated[Optional[Path], typer.Option("--adapter", help="Local T2I-Adapter folder, e.g. TencentARC/t2i-adapter-lineart-sdxl-1.0.")]
ControlnetOpt = Annotated[Optional[Path], typer.Option("--controlnet", help="Local ControlNet folder instead of --adapter, e.g. diffusers/controlnet-canny-sdxl-1.0.")]
PlanOpt = Annotated[Optional[Path], typer.Option("--plan", help="Generation plan from `balance --plan-out` (which images, how often).")]
NumPerConditionOpt = Annotated[int, typer.Option("--num-per-condition", help="Without --plan: redraws per condition image.")]
PriorOpt = Annotated[Prior, typer.Option("--prior", help="Image prior: lineart (paper default), canny, sketch.")]
PriorWeightsOpt = Annotated[Optional[Path], typer.Option("--prior-weights", help="Folder with the detector safetensors: lineart.safetensors and/or sketch.safetensors (docs/sd-adapter.md#priors).")]
BlendOpt = Annotated[str, typer.Option("--blend", help="w1,w2 of V = w1*prior(image) + w2*prior(mask) (paper eq. 4).")]
CaptionsOpt = Annotated[Optional[Path], typer.Option("--captions", help='JSON lines {"stem": ..., "caption": ...}.')]
CaptionerOpt = Annotated[Optional[Path], typer.Option("--captioner", help="Local captioning model folder, e.g. Salesforce/blip2-opt-2.7b.")]
PromptTemplateOpt = Annotated[Optional[str], typer.Option("--prompt-template", help="Prompt with {classes} and/or {caption}; default '{caption}; {classes}'.")]
NegativePromptOpt = Annotated[Optional[str], typer.Option("--negative-prompt", help="Negative prompt for every image.")]
StepsOpt = Annotated[int, typer.Option("--steps", help="Sampling steps (paper: 30).")]
GuidanceOpt = Annotated[float, typer.Option("--guidance", help="Classifier-free guidance scale.")]
ConditioningScaleOpt = Annotated[float, typer.Option("--conditioning-scale", help="Adapter / ControlNet conditioning scale.")]
ResolutionOpt = Annotated[int, typer.Option("--resolution", help="Longer side the model draws at (SDXL: 1024); outputs take the condition's size.")]
BatchSizeOpt = Annotated[int, typer.Option("--batch-size", help="Images per forward pass (results do not depend on it).")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:1 ...")]
DtypeOpt = Annotated[str, typer.Option("--dtype", help="auto (float16 on GPU), float32, float16, bfloat16.")]
PreviewOpt = Annotated[int, typer.Option("--preview", help="Write prior previews of the first N condition images.")]


def sd_sample_command(
    conditions: ConditionsOpt,
    out: OutOpt,
    base: BaseOpt,
    adapter: AdapterOpt = None,
    controlnet: ControlnetOpt = None,
    plan: PlanOpt = None,
    num_per_condition: NumPerConditionOpt = 1,
    prior: PriorOpt = Prior.lineart,
    prior_weights: PriorWeightsOpt = None,
    blend: BlendOpt = "0.7,0.9",
    captions: CaptionsOpt = None,
    captioner: CaptionerOpt = None,
    prompt_template: PromptTemplateOpt = None,
    negative_prompt: NegativePromptOpt = None,
    steps: StepsOpt = 30,
    guidance: GuidanceOpt = 7.5,
    conditioning_scale: ConditioningScaleOpt = 1.0,
    resolution: ResolutionOpt = 1024,
    seed: SeedOpt = 0,
    batch_size: BatchSizeOpt = 1,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    preview: PreviewOpt = 8,
    overwrite: OverwriteOpt = False,
    progress: ProgressOpt = True,
) -> None:
    from defectsynth.commands._summary import print_dataset_summary
    from defectsynth.controllable import generate as generate_module
    from defectsynth.data import Dataset

    written = generate_module.sample_sd(
        conditions, out, base, adapter=adapter, controlnet=controlnet, plan=plan, num_per_condition=num_per_condition,
        prior=prior.value, prior_weights=prior_weights, blend=blend, captions=captions, captioner=captioner,
        prompt_template=prompt_template, negative_prompt=negative_prompt, steps=steps, guidance=guidance,
        conditioning_scale=conditioning_scale, resolution=resolution, seed=seed, batch_size=batch_size, device=device,
        dtype=dtype, preview=preview, overwrite=overwrite, progress=progress,
    )  # fmt: skip
    print_dataset_summary(Dataset(written).manifest, written)


def register(app: typer.Typer, name: str = "sample") -> None:
    """Mount the command on ``app`` as ``name`` (the lead wires it under ``sample --backend sd-adapter``)."""
    app.command(name, help="Redraw real images with SDXL + T2I-Adapter / ControlNet, keeping their masks.", epilog=EXAMPLES)(sd_sample_command)
