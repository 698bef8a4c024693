"""``defectsynth prepare SOURCE``: import a raw dataset into a dataset folder."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from defectsynth.commands._options import OutOpt, OverwriteOpt, ProgressOpt, SeedOpt, SizeOpt
from defectsynth.commands._summary import print_dataset_summary

EXAMPLES = """
[bold]Examples[/]

  defectsynth prepare toy --out data/toy --num 200 --size 64

  defectsynth prepare lemons --source ~/lemon-dataset --binary blemish --out data/lemons-blemish

  defectsynth prepare wood --source ~/wood-defects --out data/wood   [dim](352x128, 70/20/10)[/]

  defectsynth prepare masks --source ~/my-parts --class-from-folder --background-folder good --out data/parts

[bold]Subsets (lemons)[/]: an image belongs to the subset when every category annotated on it is in the
chosen set (the thesis' strict rule); --ignore pedicel,... lists categories that do not count.
"""


class Source(str, Enum):
    toy = "toy"
    lemons = "lemons"
    wood = "wood"
    coco = "coco"
    voc = "voc"
    masks = "masks"


def prepare_command(
    source: Annotated[Source, typer.Argument(help="Which raw dataset to import.")],
    out: OutOpt,
    size: SizeOpt = None,
    keep_aspect: Annotated[Optional[bool], typer.Option("--keep-aspect/--stretch", help="Scale to fit and pad instead of stretching. Default: the source's own (wood pads).", show_default=False)] = None,
    split: Annotated[str, typer.Option("--split", help="train,val,test fractions (grouped and seeded).")] = "0.7,0.2,0.1",
    seed: SeedOpt = 0,
    num: Annotated[Optional[int], typer.Option("--num", help="toy: number of images [default: 200].")] = None,
    classes: Annotated[Optional[str], typer.Option("--classes", help="toy: subset of scratch,spot,crack,stain. lemons: multi-class set, e.g. blemish,illness,mould.")] = None,
    overwrite: OverwriteOpt = False,
    image_format: Annotated[str, typer.Option("--image-format", help="png or jpg.")] = "png",
    progress: ProgressOpt = True,
) -> None:
    from defectsynth.data.prepare import prepare

    manifest = prepare(
        source.value, out, size=size, keep_aspect=keep_aspect, split=split, seed=seed,
        overwrite=overwrite, image_format=image_format, progress=progress, num=num, classes=classes,
    )
    print_dataset_summary(manifest, out)


def register(app: typer.Typer) -> None:
    app.command("prepare", help="Import a raw dataset (toy, lemons, wood, coco, voc, masks) into a dataset folder.", epilog=EXAMPLES)(prepare_command)
