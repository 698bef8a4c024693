"""``defectsynth filter --by clip``: keep the synthetic images CLIP finds closest to their class prompt.

Not registered on its own: the lead mounts :func:`clip_filter_command` with :func:`register` (or
calls it from ``filter`` when ``--by clip``). The core is
:func:`defectsynth.controllable.clip_filter.filter_by_clip`; option names equal its arguments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from defectsynth.commands._options import OutOpt, OverwriteOpt, ProgressOpt

EXAMPLES = """
[bold]Examples[/]

  defectsynth filter synth/voc-sd --by clip --clip models/clip-vit-large-patch14 --keep-per-class 100 --out synth/voc-sd-clip

  defectsynth filter synth/voc-sd --by clip --clip models/clip-vit-large-patch14 --keep-fraction 0.5 --out synth/voc-sd-half

Ranks the images of each class by CLIP similarity to "a photo of <its classes>" and keeps the best; scores in [cyan]clip_scores.json[/]. Docs: docs/sd-adapter.md#clip-filter
"""

SyntheticArg = Annotated[Path, typer.Argument(help="A synthetic dataset folder, e.g. written by `sample --backend sd-adapter`.")]
ClipOpt = Annotated[Path, typer.Option("--clip", help="Local CLIP folder, e.g. openai/clip-vit-large-patch14.")]
KeepPerClassOpt = Annotated[Optional[int], typer.Option("--keep-per-class", help="Keep the best N images of each class.")]
KeepFractionOpt = Annotated[Optional[float], typer.Option("--keep-fraction", help="Keep the best fraction (0-1] of each class.")]
ClipTemplateOpt = Annotated[str, typer.Option("--prompt-template", help="Text each image is compared with; {classes} = its class names.")]
ClipBatchOpt = Annotated[int, typer.Option("--batch-size", help="Images per CLIP forward pass.")]
ClipDeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda ...")]


def clip_filter_command(
    synthetic: SyntheticArg,
    out: OutOpt,
    clip: ClipOpt,
    keep_per_class: KeepPerClassOpt = None,
    keep_fraction: KeepFractionOpt = None,
    prompt_template: ClipTemplateOpt = "a photo of {classes}",
    device: ClipDeviceOpt = "auto",
    batch_size: ClipBatchOpt = 16,
    overwrite: OverwriteOpt = False,
    progress: ProgressOpt = True,
) -> None:
    from defectsynth.commands._summary import print_dataset_summary
    from defectsynth.controllable import clip_filter as clip_filter_module
    from defectsynth.data import Dataset

    written = clip_filter_module.filter_by_clip(
        synthetic, out, clip, keep_per_class=keep_per_class, keep_fraction=keep_fraction, prompt_template=prompt_template,
        device=device, batch_size=batch_size, overwrite=overwrite, progress=progress,
    )  # fmt: skip
    print_dataset_summary(Dataset(written).manifest, written)


def register(app: typer.Typer, name: str = "filter") -> None:
    """Mount the command on ``app`` as ``name``."""
    app.command(name, help="Keep the synthetic images CLIP ranks best per class.", epilog=EXAMPLES)(clip_filter_command)
