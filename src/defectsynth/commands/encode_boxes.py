"""``defectsynth encode-boxes DATASET``: BASD / C-BASD condition maps, previews, boxes from masks."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from defectsynth.commands._options import DatasetArg, ProgressOpt

EXAMPLES = """
[bold]Examples[/]

  defectsynth encode-boxes data/toy --preview 8

  defectsynth encode-boxes data/wood --class-fill nearest   [dim](the paper's Algorithm 1)[/]

  defectsynth encode-boxes data/parts --from-masks --min-box-area 20 --preview 4

Writes [cyan]conditions/<stem>.npz[/] (basd float32 H x W, cbasd uint8 H x W) and, with --preview N, [cyan]conditions/preview/<stem>.png[/] (image | BASD | C-BASD). --from-masks first rewrites [cyan]boxes/[/] from the connected components of each class in the masks. Docs: docs/encode-boxes.md
"""  # noqa: E501


class ClassFill(str, Enum):
    inside = "inside"
    nearest = "nearest"


def encode_boxes_command(
    dataset: DatasetArg,
    class_fill: Annotated[
        ClassFill,
        typer.Option(
            "--class-fill",
            help=(
                "C-BASD outside boxes: 'inside' = background (paper text, public code), 'nearest' = class of "
                "the nearest box (Algorithm 1)."
            ),
        ),
    ] = ClassFill.inside,
    preview: Annotated[
        int, typer.Option("--preview", help="Write N preview PNGs (image | BASD | C-BASD) under conditions/preview/.")
    ] = 0,
    from_masks: Annotated[
        bool,
        typer.Option(
            "--from-masks", help="Derive boxes from the masks' connected components first and rewrite boxes/."
        ),
    ] = False,
    min_box_area: Annotated[
        int, typer.Option("--min-box-area", help="With --from-masks: drop components smaller than this many pixels.")
    ] = 1,
    progress: ProgressOpt = True,
) -> None:
    from defectsynth.commands._summary import console
    from defectsynth.data import Dataset
    from defectsynth.encoding.conditions import encode_boxes

    summary = encode_boxes(
        dataset,
        class_fill=class_fill.value,
        preview=preview,
        from_masks=from_masks,
        min_box_area=min_box_area,
        progress=progress,
    )
    names = Dataset(dataset).manifest.class_names
    per_class = ", ".join(f"{names.get(c, c)} {n}" for c, n in sorted(summary.boxes_per_class.items())) or "no boxes"
    if summary.boxes_rewritten:
        console.print(f"[green]rewrote[/] {summary.root / 'boxes'} from the masks")
    console.print(
        f"[green]wrote[/] {summary.maps} condition maps ({per_class}; class fill {summary.class_fill}) to "
        f"{summary.conditions_dir}"
    )
    for path in summary.previews:
        console.print(f"  preview {path}")


def register(app: typer.Typer) -> None:
    app.command(
        "encode-boxes",
        help="Encode each image's boxes as BASD + C-BASD maps (conditions/*.npz), with previews.",
        epilog=EXAMPLES,
    )(encode_boxes_command)
