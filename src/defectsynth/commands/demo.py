"""``defectsynth demo``: the box-guided pipeline on toy data, end to end, on a CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from defectsynth.commands._options import OverwriteOpt, ProgressOpt, SeedOpt
from defectsynth.commands._summary import console

EXAMPLES = """
[bold]Examples[/]

  defectsynth demo --out demo          [dim](about 10 minutes on a 2-core CPU)[/]

  defectsynth demo --quick --out demo-quick   [dim](seconds: a smoke test of every stage)[/]

Then look at demo/previews/real.png and demo/previews/synthetic.png.
"""


def demo_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Demo folder.")] = Path("defectsynth-demo"),
    quick: Annotated[bool, typer.Option("--quick", help="Tiny data, model and step counts: checks that every stage runs.")] = False,
    seed: SeedOpt = 0,
    overwrite: OverwriteOpt = False,
    progress: ProgressOpt = True,
) -> None:
    from defectsynth.toy_demo import demo

    from defectsynth.commands._metrics_tables import metrics_tables
    from defectsynth.commands.evaluate import report_table

    result = demo(out, quick=quick, seed=seed, overwrite=overwrite, progress=progress)
    for table in metrics_tables(result["metrics"]):
        console.print(table)
    plan = result["balance"]
    console.print(f"balance plan: {plan.generations} generations from {len(plan.plan)} train conditions to reach {plan.n_balance} images per class")
    if result["report"] is not None:
        console.print(report_table(result["report"]))
    for name in ("data", "run", "synthetic", "filtered", "plan", "evaluate", "previews"):
        console.print(f"{name:>10}: {result[name]}")
    console.print(f"look at {result['previews'] / 'real.png'} and {result['previews'] / 'synthetic.png'}")


def register(app: typer.Typer) -> None:
    app.command("demo", help="Run the whole pipeline on toy data: prepare, train, sample, metrics, filter, balance, evaluate, previews.", epilog=EXAMPLES)(demo_command)
