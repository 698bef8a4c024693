"""``defectsynth demo``: the box-guided pipeline on toy data, end to end, on a CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from defectsynth.commands._options import OverwriteOpt, ProgressOpt, SeedOpt
from defectsynth.commands._summary import console

EXAMPLES = """
[bold]Examples[/]

  defectsynth demo --out demo          [dim](about 6 minutes on an idle 2-core CPU)[/]

  defectsynth demo --quick --out demo-quick   [dim](seconds: a smoke test of every stage)[/]

Then look at demo/previews/real.png and demo/previews/synthetic.png.
"""


def demo_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Demo folder.")] = Path("defectsynth-demo"),
    quick: Annotated[
        bool, typer.Option("--quick", help="Tiny data, model and step counts: checks that every stage runs.")
    ] = False,
    seed: SeedOpt = 0,
    overwrite: OverwriteOpt = False,
    progress: ProgressOpt = True,
) -> None:
    from defectsynth.commands._metrics_tables import metrics_tables
    from defectsynth.commands.evaluate import report_table
    from defectsynth.toy_demo import demo

    result = demo(out, quick=quick, seed=seed, overwrite=overwrite, progress=progress)
    for table in metrics_tables(result["metrics"]):
        console.print(table)
    plan = result["balance"]
    console.print(
        f"balance plan: {plan.generations} generations from {len(plan.plan)} train conditions to reach "
        f"{plan.n_balance} images per class"
    )
    if result["report"] is not None:
        console.print(report_table(result["report"]))
    for line in verdict_lines(result["verdict"]):
        console.print(line, highlight=False)
    for name in ("data", "run", "synthetic", "filtered", "plan", "evaluate", "previews"):
        console.print(f"{name:>10}: {result[name]}")
    console.print(f"look at {result['previews'] / 'real.png'} and {result['previews'] / 'synthetic.png'}")


def verdict_lines(answer: dict[str, Any]) -> list[str]:
    """The demo's verdict as printed: both mixes' mIoU (mean ± std), the difference, its spread, every repeat."""
    base, mixed, diff = answer["baseline"], answer["with_synthetic"], answer["difference"]
    per_repeat = ", ".join(f"{d:+.3f}" for d in diff["per_repeat"])
    pct = "" if diff["relative_pct"] is None else f" ({diff['relative_pct']:+.1f}%)"
    if answer["direction"] == "no change":
        word = "no change"
    elif answer["every_repeat"]:
        word = f"a {answer['direction']} in every repeat"
    else:
        word = f"a {answer['direction']} on average, but not in every repeat: within the spread, not a clear difference"
    return [
        f"verdict: mIoU {base['mix']} (real only) {base['mean']:.3f} ± {base['std']:.3f}, {mixed['mix']} (real + "
        "synthetic) "
        f"{mixed['mean']:.3f} ± {mixed['std']:.3f}, over {answer['repeats']} repeats; {answer['budget']}",
        f"verdict: adding the synthetic data changed mIoU by {diff['mean']:+.3f} ± {diff['std']:.3f}{pct} (per "
        f"repeat {per_repeat}): {word}",
    ]


def register(app: typer.Typer) -> None:
    app.command(
        "demo",
        help=(
            "Run the whole pipeline on toy data: prepare, train, sample, metrics, filter, balance, evaluate, previews."
        ),
        epilog=EXAMPLES,
    )(demo_command)
