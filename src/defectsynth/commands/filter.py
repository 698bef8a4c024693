"""``defectsynth filter SYNTH --out DIR --by boxes|segmenter|clip``: keep the good synthetic pairs.

``--by boxes`` and ``--by segmenter`` run :func:`defectsynth.filtering.filter_dataset`; ``--by clip``
runs :func:`defectsynth.sd_backend.clip_filter.filter_by_clip` (its own output: clip_scores.json
and a ``source.filter = "clip"`` manifest). :func:`defectsynth.filtering.check_by_options` refuses
an option given with a ``--by`` it does not belong to.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from defectsynth.commands._options import OutOpt, OverwriteOpt, ProgressOpt, SeedOpt, SizeOpt, renamed_option

ClipModelOpt = Annotated[
    Optional[Path],
    typer.Option("--clip-model", help="--by clip: local CLIP model folder, e.g. openai/clip-vit-large-patch14."),
]
KeepPerClassOpt = Annotated[
    Optional[int], typer.Option("--keep-per-class", help="--by clip: keep the best N images of each class.")
]
KeepFractionOpt = Annotated[
    Optional[float],
    typer.Option(
        "--keep-fraction",
        help="segmenter: keep this fraction of the pairs (rounded down, at least 1); clip: of each class (rounded up).",
    ),
]
PromptTemplateOpt = Annotated[
    Optional[str],
    typer.Option(
        "--prompt-template",
        help=(
            "--by clip: text each image is compared with; {classes} = its class names (default 'a photo of {classes}')."
        ),
    ),
]

EXAMPLES = """
[bold]Examples[/]

  defectsynth filter synth/wood --out synth/wood-clipped --by boxes --clip-labels   [dim](BASD paper, section 4.3)[/]

  defectsynth filter synth/wood --out synth/wood-clipped --by boxes --clip-labels --class-agnostic   [dim](outside every box, the paper's wording)[/]

  defectsynth filter synth/wood --out synth/wood-clean --by boxes --max-sae 0.2 --drop-empty-boxes

  defectsynth filter synth/lemons --out synth/lemons-top128 --by segmenter --real data/lemons --top-k 128   [dim](thesis, section 6.1)[/]

  defectsynth filter synth/lemons --out synth/lemons-best --by segmenter --segmenter reports/lemons/models/unet__R-all_S-0__real__r0 --score ce --keep-fraction 0.35   [dim](a network saved by evaluate --save-models)[/]

  defectsynth filter synth/voc-sd --out synth/voc-sd-clip --by clip --clip-model models/clip-vit-large-patch14 --keep-per-class 100   [dim](VOC paper, section 4.3.1)[/]

[bold]--by boxes[/]: --clip-labels sets defect pixels outside every box of their class to background; --max-sae X drops samples whose share of such pixels exceeds X; --drop-empty-boxes drops samples with a box holding no pixel of its class. [bold]--by segmenter[/]: a U-Net trained on the --real train split (or a saved smp network, --segmenter) predicts each synthetic image; pairs are ranked by the IoU (higher is better) or cross-entropy (lower is better) between prediction and generated mask; the top K are kept (scores.json). [bold]--by clip[/]: per class, the images CLIP finds closest to "a photo of <their classes>" are kept (--keep-per-class N or --keep-fraction F; clip_scores.json). dataset.json records what was removed. Docs: docs/filter.md
"""  # noqa: E501


class By(str, Enum):
    boxes = "boxes"
    segmenter = "segmenter"
    clip = "clip"


class Score(str, Enum):
    iou = "iou"
    ce = "ce"


def filter_command(
    synthetic: Annotated[
        Path,
        typer.Argument(
            help="Synthetic dataset folder (generated masks/, condition boxes/), e.g. written by `defectsynth sample`.",
            metavar="SYNTH",
        ),
    ],
    out: OutOpt,
    by: Annotated[
        By,
        typer.Option(
            "--by",
            help=(
                "boxes: check masks against their condition boxes; segmenter: rank by a segmentation network; "
                "clip: rank by CLIP, per class."
            ),
        ),
    ],
    clip_labels: Annotated[
        bool,
        typer.Option(
            "--clip-labels", help="--by boxes: set defect pixels outside every box of their class to background."
        ),
    ] = False,
    max_sae: Annotated[
        Optional[float],
        typer.Option(
            "--max-sae",
            help="--by boxes: drop samples whose SAE (share of defect pixels outside their boxes) exceeds this.",
        ),
    ] = None,
    drop_empty_boxes: Annotated[
        bool,
        typer.Option(
            "--drop-empty-boxes", help="--by boxes: drop samples with a box that holds no pixel of its class."
        ),
    ] = False,
    real: Annotated[
        Optional[Path], typer.Option("--real", help="--by segmenter: real dataset folder to train the U-Net on.")
    ] = None,
    segmenter: Annotated[
        Optional[Path],
        typer.Option(
            "--segmenter",
            help=(
                "--by segmenter: a saved network (evaluate --save-models, or a filter's segmenter/) instead of --real."
            ),
        ),
    ] = None,
    split: Annotated[str, typer.Option("--split", help="Split of --real to train on; 'all' = every stem.")] = "train",
    score: Annotated[
        Score,
        typer.Option(
            "--score", help="iou (per-image mean IoU, higher is better) or ce (cross-entropy, lower is better)."
        ),
    ] = Score.iou,
    top_k: Annotated[Optional[int], typer.Option("--top-k", help="Keep the K best pairs.")] = None,
    keep_fraction: KeepFractionOpt = None,
    clip_model: ClipModelOpt = None,
    keep_per_class: KeepPerClassOpt = None,
    prompt_template: PromptTemplateOpt = None,
    size: SizeOpt = None,
    arch: Annotated[str, typer.Option("--arch", help="smp architecture of the trained filter network.")] = "unet",
    encoder: Annotated[str, typer.Option("--encoder", help="smp encoder of the trained filter network.")] = "resnet34",
    encoder_weights: Annotated[
        str, typer.Option("--encoder-weights", help="Encoder initialisation: imagenet (cached or downloaded) or none.")
    ] = "imagenet",
    epochs: Annotated[int, typer.Option("--epochs", help="Training epochs of the filter network.")] = 50,
    batch_size: Annotated[
        Optional[int],
        typer.Option(
            "--batch-size",
            help="Images per batch (segmenter: training and scoring, default 8; clip: CLIP passes, default 16).",
        ),
    ] = None,
    lr: Annotated[float, typer.Option("--lr", help="Adam learning rate of the filter network.")] = 1e-4,
    seed: SeedOpt = 0,
    device: Annotated[
        Optional[str],
        typer.Option("--device", help="torch device (cpu, cuda, cuda:1, auto); default cuda when available, else cpu."),
    ] = None,
    overwrite: OverwriteOpt = False,
    progress: ProgressOpt = True,
    model: Annotated[
        Optional[Path], typer.Option("--model", hidden=True, help="Deprecated name of --segmenter.")
    ] = None,
    clip: Annotated[
        Optional[Path], typer.Option("--clip", hidden=True, help="Deprecated name of --clip-model.")
    ] = None,
    class_agnostic: Annotated[
        bool,
        typer.Option(
            "--class-agnostic",
            help=(
                "--by boxes: a pixel counts as inside when it lies in any box, a box as empty without any "
                "defect pixel (the BASD paper's wording). Default: class-aware (its own class's boxes)."
            ),
        ),
    ] = False,
) -> None:
    from defectsynth.stages.filter import filter_dataset

    segmenter = renamed_option("--model", "--segmenter", model, segmenter)
    clip_model = renamed_option("--clip", "--clip-model", clip, clip_model)

    summary = filter_dataset(
        synthetic, out, by.value, clip_labels=clip_labels, max_sae=max_sae, drop_empty_boxes=drop_empty_boxes,
        real=real, segmenter=segmenter, split=split, score=score.value, top_k=top_k, keep_fraction=keep_fraction,
        size=size, arch=arch, encoder=encoder, encoder_weights=encoder_weights, epochs=epochs, batch_size=batch_size,
        lr=lr, seed=seed, device=device, overwrite=overwrite, progress=progress, class_agnostic=class_agnostic,
        clip_model=clip_model, keep_per_class=keep_per_class, prompt_template=prompt_template,
    )  # fmt: skip
    if by is By.clip:  # the kept folder
        from defectsynth.commands._summary import print_dataset_summary
        from defectsynth.data import Dataset

        print_dataset_summary(Dataset(summary).manifest, summary)
        return
    _print_summary(summary)


def _print_summary(summary) -> None:
    """Images per class in, kept, removed and pixels clipped; the first removals."""
    from rich.table import Table

    from defectsynth.commands._summary import console

    table = Table(
        title=f"filter --by {summary.by}: kept {len(summary.kept)}, removed {len(summary.removed)}",
        title_justify="left",
    )
    for header in ("class", "images in", "kept", "removed", "pixels clipped"):
        table.add_column(header, justify="left" if header == "class" else "right")
    for cls, name in sorted(summary.class_names.items()):
        if cls:
            table.add_row(
                name,
                *(
                    str(int(a[cls]))
                    for a in (summary.input_images, summary.kept_images, summary.removed_images, summary.clipped_pixels)
                ),
            )
    console.print(table)
    for stem, reason in list(summary.removed.items())[:5]:
        console.print(f"  removed {stem}: {reason}")
    if len(summary.removed) > 5:
        console.print(f"  ... and {len(summary.removed) - 5} more (all listed in dataset.json, source.filters)")
    console.print(f"[green]wrote[/] {summary.out}")


def register(app: typer.Typer) -> None:
    app.command(
        "filter",
        help=(
            "Filter synthetic pairs: clip labels to boxes, reject by SAE/empty boxes, or keep the top K by a segmenter."
        ),
        epilog=EXAMPLES,
    )(filter_command)
