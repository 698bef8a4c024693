"""``defectsynth export DATASET --to coco|yolo-seg|hf --out DIR``: a dataset folder in another tool's format."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from defectsynth.commands._options import DatasetArg, OutOpt, OverwriteOpt, ProgressOpt

EXAMPLES = """
[bold]Examples[/]

  defectsynth export data/wood --to coco --out export/wood-coco   [dim](annotations/instances_<split>.json + images/)[/]

  defectsynth export synth/wood --to yolo-seg --out export/wood-yolo   [dim](then: yolo segment train data=export/wood-yolo/data.yaml)[/]

  defectsynth export data/wood --to hf --out export/wood-hf   [dim](datasets.load_from_disk("export/wood-hf"); needs pip install 'defectsynth[hf]')[/]

Annotations are the connected components of each defect class in the masks (ignore pixels, 255, are left
out); a component with a hole is a COCO RLE, and in YOLO-seg one polygon with a cut to the hole. Splits are
kept; images are copied unchanged. Docs: docs/export.md
"""  # noqa: E501


class ExportFormat(str, Enum):
    coco = "coco"
    yolo_seg = "yolo-seg"
    hf = "hf"


def export_command(
    dataset: DatasetArg,
    to: Annotated[
        ExportFormat,
        typer.Option(
            "--to", help="coco (instances JSON), yolo-seg (Ultralytics) or hf (Hugging Face datasets folder)."
        ),
    ],
    out: OutOpt,
    overwrite: OverwriteOpt = False,
    progress: ProgressOpt = True,
) -> None:
    from defectsynth.commands._summary import console
    from defectsynth.data.export import export

    result = export(dataset, out, to=to.value, overwrite=overwrite, progress=progress)
    for split, images in result.images.items():
        console.print(
            f"{split}: {images} images, {result.annotations[split]} {'boxes' if result.to == 'hf' else 'instances'}"
        )
    console.print(f"[green]wrote[/] {result.out}")


def register(app: typer.Typer) -> None:
    app.command(
        "export",
        help="Export a dataset folder as COCO instances, Ultralytics YOLO-seg or a Hugging Face datasets folder.",
        epilog=EXAMPLES,
    )(export_command)
