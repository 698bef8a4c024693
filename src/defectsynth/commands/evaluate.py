"""``defectsynth evaluate``: the downstream segmentation benchmark (real vs real + synthetic)."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from defectsynth.commands._options import OutOpt, OverwriteOpt, ProgressOpt, SeedOpt
from defectsynth.commands._presets import PresetOpt, chosen_preset
from defectsynth.commands._summary import console
from defectsynth.errors import OptionError

EXAMPLES = """
[bold]Examples[/]

  defectsynth evaluate --real data/lemons --synthetic synth/isdm --out reports/isdm   [dim](thesis grid, 3 models x 3 repeats)[/]

  defectsynth evaluate --real data/wood --synthetic synth/basd --out reports/basd --models unet --encoder resnet18 \\
      --per-class-binary --epochs 100 --batch-size 64 --lr 1e-5 --optimizer adamw --repeats 1 --mix "R=all,S=0" --mix "R=0,S=all" --mix "R=all,S=all"

  defectsynth evaluate --real data/toy --synthetic synth/a --synthetic synth/b --out reports/toy --encoder-weights none \\
      --epochs 5 --size 64 --repeats 2 --mix "R=all,S=0;R=all,S=R"

  defectsynth evaluate --real data/toy --synthetic synth/a --out reports/toy-conv --budget converge --patience 5 --epochs 100
  defectsynth evaluate --real data/toy --synthetic synth/a --out reports/toy-thesis --budget epochs   [dim](the thesis: 50 epochs per mix)[/]

  accelerate launch -m defectsynth evaluate --real data/lemons --synthetic synth/isdm --out reports/isdm   [dim](cells over GPUs)[/]

  defectsynth evaluate --preset basd-paper --real data/wood --synthetic synth/wood-clipped --out reports/basd   [dim](Table 4: trains on val, the 20% split)[/]

  defectsynth evaluate --real data/wood --train-split val --test-split test --lr-schedule constant --out reports/wood-20

  defectsynth evaluate --real data/voc --test-split val --optimizer sgd --lr 0.01 --lr-schedule poly --size 512 --out reports/voc   [dim](MMSegmentation's SGD)[/]

[bold]Mixes[/] (thesis notation): R=all|0|N|N%, S=0|all|R|N|N%; S=R means as many synthetic as real pairs.
Synthetic subsets are nested seeded draws. A stopped evaluation resumes: run the same command again.
[bold]Budgets[/]: steps (default) trains every mix for the same optimiser steps, --epochs x the steps of one
epoch of the real-only mix R=all,S=0 (or --steps N), so a mix with twice the pairs does half the epochs;
converge trains each mix until --patience epochs bring no better validation mIoU (at most --epochs);
epochs trains every mix for --epochs passes over its own pairs (the thesis; larger mixes get more steps).
"""  # noqa: E501


class Weights(str, Enum):
    imagenet = "imagenet"
    none = "none"


class Augment(str, Enum):
    none = "none"
    classic = "classic"


class Optimizer(str, Enum):
    adam = "adam"
    adamw = "adamw"
    sgd = "sgd"


class LrSchedule(str, Enum):
    step = "step"
    constant = "constant"
    poly = "poly"


class Loss(str, Enum):
    dice = "dice"
    ce = "ce"
    dice_ce = "dice+ce"


def _json_object(text: Optional[str]) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as err:
        raise OptionError(f"--model-kwargs: not valid JSON ({err}), e.g. '{{\"encoder_depth\": 4}}'") from None
    if not isinstance(value, dict):
        raise OptionError(f"--model-kwargs: expected a JSON object, got {text!r}")
    return value


def evaluate_command(
    real: Annotated[
        Path,
        typer.Option(
            "--real", help="Real dataset folder with train and test splits (20% of train is held out for validation)."
        ),
    ],
    out: OutOpt,
    synthetic: Annotated[
        Optional[list[Path]], typer.Option("--synthetic", help="Synthetic dataset folder (repeat for several sources).")
    ] = None,
    models: Annotated[
        str, typer.Option("--models", help="Comma-separated segmentation_models_pytorch architectures.")
    ] = "unetplusplus,fpn,deeplabv3plus",
    encoder: Annotated[str, typer.Option("--encoder", help="smp encoder name.")] = "resnet34",
    encoder_weights: Annotated[
        Weights,
        typer.Option("--encoder-weights", help="imagenet needs a download once (cached), none trains from scratch."),
    ] = Weights.imagenet,
    epochs: Annotated[
        int,
        typer.Option(
            "--epochs",
            help=(
                "--budget steps: the budget in epochs of the real-only mix R=all,S=0 (unless --steps) and the "
                "number of validation rounds; converge: the most epochs; epochs: epochs per network. The "
                "weights of the best validation mIoU are kept."
            ),
        ),
    ] = 50,
    budget: Annotated[
        str,
        typer.Option(
            "--budget",
            help=(
                "steps (same optimiser steps for every mix), converge (each mix until --patience epochs "
                "without a better validation mIoU) or epochs (the thesis: same epochs, so larger mixes train "
                "longer)."
            ),
        ),
    ] = "steps",
    steps: Annotated[
        Optional[int],
        typer.Option(
            "--steps",
            help=(
                "--budget steps: optimiser steps per network (default: --epochs x the steps of one epoch of R=all,S=0)."
            ),
        ),
    ] = None,
    patience: Annotated[
        int,
        typer.Option(
            "--patience", help="--budget converge: stop after this many epochs without a better validation mIoU."
        ),
    ] = 5,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Batch size.")] = 8,
    size: Annotated[str, typer.Option("--size", help="Training size: N for NxN or WIDTHxHEIGHT.")] = "256",
    lr: Annotated[float, typer.Option("--lr", help="Adam learning rate (divided by 10 halfway).")] = 1e-4,
    repeats: Annotated[
        int, typer.Option("--repeats", help="Trainings per (model, mix); mean and std over them are reported.")
    ] = 3,
    seed: SeedOpt = 0,
    mix: Annotated[
        Optional[list[str]],
        typer.Option(
            "--mix",
            help="R=..,S=.. configuration (repeat, or separate with ';'). Default: baseline + the thesis' seven.",
        ),
    ] = None,
    per_class_binary: Annotated[
        bool,
        typer.Option("--per-class-binary", help="One binary network per defect class (the BASD paper's protocol)."),
    ] = False,
    augment: Annotated[
        Augment,
        typer.Option("--augment", help="classic: flips, affine, blur/sharpen, contrast/hue (the thesis' comparison)."),
    ] = Augment.none,
    loss: Annotated[Loss, typer.Option("--loss", help="Training loss.")] = Loss.dice,
    optimizer: Annotated[
        Optimizer,
        typer.Option(
            "--optimizer",
            help=(
                "adam (the thesis' validation code), adamw (the BASD paper) or sgd (momentum 0.9, weight "
                "decay 5e-4: MMSegmentation's, the VOC paper)."
            ),
        ),
    ] = Optimizer.adam,
    model_kwargs: Annotated[
        Optional[str],
        typer.Option("--model-kwargs", help="Extra smp.create_model arguments as JSON, e.g. '{\"encoder_depth\": 4}'."),
    ] = None,
    save_models: Annotated[
        bool,
        typer.Option(
            "--save-models",
            help=(
                "Keep each cell's selected network in OUT/models/<cell>/ (loadable by `filter --by segmenter "
                "--segmenter`)."
            ),
        ),
    ] = False,
    overwrite: OverwriteOpt = False,
    progress: ProgressOpt = True,
    train_split: Annotated[
        str,
        typer.Option(
            "--train-split",
            help=(
                "Real split the networks train on (20% of it held out for validation); the BASD paper trains "
                "on its 20% split (val)."
            ),
        ),
    ] = "train",
    test_split: Annotated[str, typer.Option("--test-split", help="Real split scored once per network.")] = "test",
    lr_schedule: Annotated[
        LrSchedule,
        typer.Option(
            "--lr-schedule",
            help=(
                "step: --lr divided by 10 halfway (the thesis' validation code); constant: one rate (the BASD "
                "paper states one); poly: (lr - 1e-4) * (1 - step/total)^0.9 + 1e-4 every step "
                "(MMSegmentation, the VOC paper)."
            ),
        ),
    ] = LrSchedule.step,
    preset: PresetOpt = None,
) -> None:
    from defectsynth.evaluation import evaluate

    mixes = [part.strip() for text in (mix or []) for part in text.split(";") if part.strip()] or None
    report = evaluate(
        real,
        out,
        synthetic=list(synthetic or []),
        models=[m for m in models.split(",") if m.strip()],
        encoder=encoder,
        encoder_weights=encoder_weights.value,
        epochs=epochs,
        budget=budget,
        steps=steps,
        patience=patience,
        batch_size=batch_size,
        size=size,
        lr=lr,
        repeats=repeats,
        seed=seed,
        mix=mixes,
        per_class_binary=per_class_binary,
        augment=augment.value,
        loss=loss.value,
        optimizer=optimizer.value,
        model_kwargs=_json_object(model_kwargs),
        save_models=save_models,
        overwrite=overwrite,
        progress=progress,
        train_split=train_split,
        test_split=test_split,
        lr_schedule=lr_schedule.value,
        preset=chosen_preset(preset, "evaluate"),
    )
    if report is not None:
        console.print(report_table(report))
        console.print(training_table(report))
        console.print(f"[green]wrote[/] {out}/report.md, report.csv, cells.csv, report.json and chart_<model>.png")


def report_table(report: dict[str, Any]) -> Table:
    """mIoU (mean ± std over repeats) and the difference to the baseline, one column per model."""
    rows = report["rows"]
    model_names = list(dict.fromkeys(r["model"] for r in rows))
    table = Table(
        title=f"mIoU (macro-imagewise) on the real test split, mean±std over repeats; {report['budget']}",
        title_justify="left",
    )
    for name in ("mix", "#R", "#S", "synthetic"):
        table.add_column(name, justify="right" if name.startswith("#") else "left")
    for name in model_names:
        table.add_column(name, justify="right")
    keyed = {(r["mix"], r["synthetic"], r["model"]): r for r in rows}
    for mix, synth in dict.fromkeys((r["mix"], r["synthetic"]) for r in rows):
        first = next(r for r in rows if r["mix"] == mix and r["synthetic"] == synth)
        cells = []
        for name in model_names:
            r = keyed.get((mix, synth, name))
            if r is None or r["miou_mean"] is None:
                cells.append("-")
                continue
            diff = "" if r["diff_pct"] is None or synth is None else f" ({r['diff_pct']:+.1f}%)"
            cells.append(f"{r['miou_mean']:.3f}±{r['miou_std']:.3f}{diff}")
        table.add_row(mix, str(first["n_real"]), str(first["n_synthetic"]), synth or "-", *cells)
    return table


def training_table(report: dict[str, Any]) -> Table:
    """How every network trained: steps, epochs over its own pairs, where its selected weights came from."""
    from defectsynth.evaluation.report import UNDER_TRAINED_PCT, class_label, epochs_at_best, networks

    table = Table(
        title=f"training per network ({report['budget']})",
        title_justify="left",
        caption=f"under-trained: the best validation mIoU came in the last {UNDER_TRAINED_PCT}% of the steps",
        caption_justify="left",
    )
    for name in ("model", "mix", "synthetic", "repeat", "class", "steps", "epochs", "best at epoch", "under-trained"):
        table.add_column(name, justify="right" if name in ("repeat", "steps", "epochs", "best at epoch") else "left")
    for cell in report["cells"]:
        for net in networks(cell):
            flag = "[bold yellow]yes[/]" if net["under_trained"] else ""
            table.add_row(
                cell["model"],
                cell["mix"],
                cell["synthetic"] or "-",
                str(cell["repeat"]),
                class_label(net),
                str(net["steps"]),
                f"{net['epochs']:.2f}",
                f"{epochs_at_best(net):.2f}",
                flag,
            )
    return table


def register(app: typer.Typer) -> None:
    app.command(
        "evaluate",
        help=(
            "Benchmark synthetic data: train smp segmentation networks on real/synthetic mixes, score on the "
            "real test split."
        ),
        epilog=EXAMPLES,
    )(evaluate_command)
