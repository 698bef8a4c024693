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

    folders = demo(out, quick=quick, seed=seed, overwrite=overwrite, progress=progress)
    for name, path in folders.items():
        console.print(f"{name:>10}: {path}")
    console.print(f"look at {folders['previews'] / 'real.png'} and {folders['previews'] / 'synthetic.png'}")


def register(app: typer.Typer) -> None:
    app.command("demo", help="Run prepare -> train -> sample on toy data and write previews.", epilog=EXAMPLES)(demo_command)
