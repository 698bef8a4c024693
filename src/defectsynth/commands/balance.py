"""``defectsynth balance DATASET``: a class-balancing generation plan (VOC paper, Algorithm 1) or a merged dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from defectsynth.commands._options import DatasetArg, OverwriteOpt, ProgressOpt

EXAMPLES = """
[bold]Examples[/]

  defectsynth balance data/wood --n-balance auto --plan-out plan.json   [dim](then: defectsynth sample RUN --plan plan.json)[/]

  defectsynth balance data/wood --n-balance 120 --plan-out plan.json --split train

  defectsynth balance data/wood --with synth/wood --out data/wood+synth   [dim](merge everything)[/]

  defectsynth balance data/wood --with synth/wood --n-balance 120 --out data/wood+balanced

[bold]Plan[/] (Che et al., Algorithm 1): map each class to the images containing it, fewest classes first, and generate from them in turn until every class is in --n-balance images; 'auto' (the default) makes the plan about as large as the real split. [bold]Merge[/]: every real sample and split, plus the synthetic samples (all, or chosen the same way to reach --n-balance) added to the train split. Both print class entropy and CIR before and after. Docs: docs/balance.md
"""  # noqa: E501


def balance_command(
    dataset: DatasetArg,
    n_balance: Annotated[
        Optional[str],
        typer.Option(
            "--n-balance",
            help=(
                "Images per class to reach, or 'auto' (synthetic about as many as real). Plan default: auto; "
                "merge default: take every synthetic sample."
            ),
        ),
    ] = None,
    plan_out: Annotated[
        Optional[Path], typer.Option("--plan-out", help="Write the generation plan (JSON) here.")
    ] = None,
    synthetic: Annotated[
        Optional[Path], typer.Option("--with", "--synthetic", help="Synthetic dataset folder to merge with DATASET.")
    ] = None,
    out: Annotated[
        Optional[Path], typer.Option("--out", "-o", help="Merged dataset folder (created atomically).")
    ] = None,
    split: Annotated[
        str, typer.Option("--split", help="The real training split the classes are counted on; 'all' = every stem.")
    ] = "train",
    overwrite: OverwriteOpt = False,
    progress: ProgressOpt = True,
) -> None:
    from defectsynth.balancing import BalancePlan
    from defectsynth.commands._metrics_tables import metrics_tables
    from defectsynth.commands._summary import console
    from defectsynth.stages.balance import balance

    result = balance(
        dataset,
        n_balance=n_balance,
        plan_out=plan_out,
        synthetic=synthetic,
        out=out,
        split=split,
        overwrite=overwrite,
        progress=progress,
    )
    distribution = result.distribution()
    for table in metrics_tables(
        {name: {when: distribution[when][name] for when in ("before", "after")} for name in ("entropy", "cir")}
    ):
        console.print(table)
    names = result.class_names
    if isinstance(result, BalancePlan):
        if result.unreachable:
            console.print(
                f"[yellow]no image contains[/] {', '.join(names[c] for c in result.unreachable)}: they cannot "
                "be generated"
            )
        console.print(
            f"n_balance {result.n_balance}: {result.generations} generations from {len(result.plan)} conditions"
        )
        console.print(f"[green]wrote[/] {plan_out}")
        return
    for cls, missing in result.short.items():
        console.print(
            f"[yellow]{names.get(cls, cls)}[/]: {missing} image{'s' if missing != 1 else ''} short of "
            f"{result.n_balance} (no synthetic sample left that helps)"
        )
    console.print(f"merged {result.real_stems} real + {len(result.selected)} of {result.available} synthetic samples")
    console.print(f"[green]wrote[/] {result.out}")


def register(app: typer.Typer) -> None:
    app.command(
        "balance",
        help="Plan class-balancing generations (VOC paper, Algorithm 1) or merge real and synthetic data.",
        epilog=EXAMPLES,
    )(balance_command)
