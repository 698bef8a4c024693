"""``defectsynth prepare SOURCE``: import a raw dataset into a dataset folder."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from defectsynth.commands._options import OutOpt, OverwriteOpt, ProgressOpt, SeedOpt, SizeOpt, renamed_option
from defectsynth.commands._summary import print_dataset_summary

EXAMPLES = """
[bold]Examples[/]

  defectsynth prepare toy --out data/toy --num 200 --size 64

  defectsynth prepare lemons --source ~/lemon-dataset --binary blemish --out data/lemons-blemish

  defectsynth prepare lemons --source lemon-dataset.zip --classes blemish,illness,mould --out data/lemons-bim

  defectsynth prepare lemons --source ~/lemon-dataset --binary blemish --split-fractions 0.8,0.2 --seed 1 --out data/lemons-80-20

  defectsynth prepare wood --source ~/wood-defects --out data/wood   [dim](352x128, 70/20/10)[/]

  defectsynth prepare coco --annotations instances.json --images ~/coco/images --out data/coco

  defectsynth prepare voc --source ~/VOCdevkit/VOC2012 --size 256 --out data/voc

  defectsynth prepare masks --source ~/my-parts --class-from-folder --background-folder good --out data/parts

  defectsynth prepare masks --source ~/scans --palette colours.json --min-box-area 4 --out data/scans

  defectsynth prepare masks --source ~/cracks --size 96x64 --min-defect-pixels 1 --out data/cracks   [dim](refuse to lose a defect)[/]

[bold]Subsets (lemons)[/]: an image belongs to the subset when every category annotated on it is in the
chosen set and at least one is present (the thesis' strict rule: all nine categories count, pedicel,
image_quality and condition included); --ignore pedicel,... lists categories that do not count.
Overlaps of two chosen categories become the class 'mix' with --classes.
"""  # noqa: E501


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
    keep_aspect: Annotated[
        Optional[bool],
        typer.Option(
            "--keep-aspect/--stretch",
            help="Scale to fit and pad instead of stretching. Default: the source's own (wood pads).",
            show_default=False,
        ),
    ] = None,
    split_fractions: Annotated[
        str, typer.Option("--split-fractions", help="train,val,test fractions (grouped and seeded).")
    ] = "0.7,0.2,0.1",
    split: Annotated[
        Optional[str], typer.Option("--split", hidden=True, help="Deprecated name of --split-fractions.")
    ] = None,
    seed: SeedOpt = 0,
    num: Annotated[Optional[int], typer.Option("--num", help="toy: number of images (default 200).")] = None,
    classes: Annotated[
        Optional[str],
        typer.Option(
            "--classes",
            help=(
                "toy: subset of scratch,spot,crack,stain. lemons: multi-class subset, e.g. "
                "blemish,illness,mould (+ 'mix'). masks: names of mask ids 1..N."
            ),
        ),
    ] = None,
    source_dir: Annotated[
        Optional[Path],
        typer.Option(
            "--source",
            help=(
                "lemons: dataset folder or zip. wood: unpacked archive. voc: VOCdevkit/VOC2012. masks: folder "
                "of images + masks."
            ),
        ),
    ] = None,
    binary: Annotated[
        Optional[str],
        typer.Option(
            "--binary",
            help="lemons: one defect class from these categories, e.g. blemish or blemish,illness,mould (merged).",
        ),
    ] = None,
    ignore: Annotated[
        Optional[str],
        typer.Option(
            "--ignore",
            help=(
                "lemons: categories that do not count for the subset rule and are left out of the masks, e.g. pedicel."
            ),
        ),
    ] = None,
    annotations: Annotated[Optional[Path], typer.Option("--annotations", help="coco: the instances JSON file.")] = None,
    images: Annotated[
        Optional[Path], typer.Option("--images", help="coco: the folder the file_names are relative to.")
    ] = None,
    palette: Annotated[
        Optional[Path], typer.Option("--palette", help='masks: JSON {"class": [r, g, b], ...} for colour masks.')
    ] = None,
    class_from_folder: Annotated[
        bool,
        typer.Option("--class-from-folder", help="masks: one subfolder per class; nonzero mask pixels belong to it."),
    ] = False,
    background_folder: Annotated[
        Optional[str],
        typer.Option(
            "--background-folder",
            help="masks: subfolders of defect-free images (e.g. good,Free), with --class-from-folder.",
        ),
    ] = None,
    min_box_area: Annotated[
        Optional[int],
        typer.Option(
            "--min-box-area",
            help="masks: drop mask components smaller than this many output pixels from the boxes (default 1).",
        ),
    ] = None,
    overwrite: OverwriteOpt = False,
    image_format: Annotated[str, typer.Option("--image-format", help="png or jpg.")] = "png",
    min_defect_pixels: Annotated[
        Optional[int],
        typer.Option(
            "--min-defect-pixels",
            help=(
                "Refuse (exit 2, nothing written) when a class in an image keeps fewer than N pixels after "
                "resizing. Without it, defects and boxes that resizing removes are a warning (counted in "
                "dataset.json)."
            ),
            show_default=False,
        ),
    ] = None,
    progress: ProgressOpt = True,
) -> None:
    from defectsynth.data.prepare import prepare

    split_fractions = renamed_option("--split", "--split-fractions", split, split_fractions, "0.7,0.2,0.1")
    manifest = prepare(
        source.value,
        out,
        size=size,
        keep_aspect=keep_aspect,
        split_fractions=split_fractions,
        seed=seed,
        overwrite=overwrite,
        image_format=image_format,
        min_defect_pixels=min_defect_pixels,
        progress=progress,
        num=num,
        classes=classes,
        source_dir=source_dir,
        binary=binary,
        ignore=ignore,
        annotations=annotations,
        images=images,
        palette=palette,
        class_from_folder=class_from_folder,
        background_folder=background_folder,
        min_box_area=min_box_area,
    )
    print_dataset_summary(manifest, out)


def register(app: typer.Typer) -> None:
    app.command(
        "prepare",
        help="Import a raw dataset (toy, lemons, wood, coco, voc, masks) into a dataset folder.",
        epilog=EXAMPLES,
    )(prepare_command)
