"""The ``defectsynth`` command: registers one Typer function per subcommand and maps errors.

A :class:`~defectsynth.errors.DefectsynthError` becomes one red line on stderr and exit code 2;
``DEFECTSYNTH_DEBUG=1`` shows its traceback instead. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import logging
import os

import typer
from rich.markup import escape
from typer.core import TyperGroup

from defectsynth import __version__
from defectsynth.commands import balance as balance_cmd
from defectsynth.commands import demo as demo_cmd
from defectsynth.commands import encode_boxes as encode_boxes_cmd
from defectsynth.commands import evaluate as evaluate_cmd
from defectsynth.commands import export as export_cmd
from defectsynth.commands import filter as filter_cmd
from defectsynth.commands import metrics as metrics_cmd
from defectsynth.commands import prepare as prepare_cmd
from defectsynth.commands import push as push_cmd
from defectsynth.commands import sample as sample_cmd
from defectsynth.commands import train as train_cmd
from defectsynth.errors import DefectsynthError
from defectsynth.progress import stderr_console


class _ErrorMappingGroup(TyperGroup):
    """Turns user-facing errors into one line and exit code 2, for every subcommand."""

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except DefectsynthError as err:
            if os.environ.get("DEFECTSYNTH_DEBUG"):
                raise
            stderr_console.print(f"[bold red]error:[/] {escape(str(err))}", soft_wrap=True, highlight=False)
            raise typer.Exit(err.exit_code) from None


app = typer.Typer(
    name="defectsynth",
    cls=_ErrorMappingGroup,
    help="Grow small industrial defect-segmentation datasets with diffusion models.",
    epilog="Typical use: defectsynth prepare toy --out data/toy  ·  docs: docs/index.md",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"defectsynth {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log what the library does (INFO level)."),
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    _quiet_opencv(verbose)


def _quiet_opencv(verbose: bool) -> None:
    """OpenCV prints its own warning for each unreadable image ("PNG input buffer is incomplete"),
    which would add lines to the one error line that names the file; it speaks only with --verbose."""
    import cv2

    levels = getattr(cv2.utils, "logging", None)  # OpenCV 5
    if levels is not None:
        levels.setLogLevel(levels.LOG_LEVEL_WARNING if verbose else levels.LOG_LEVEL_ERROR)
    else:  # OpenCV 4 (4.11 is the declared floor): the same levels as plain numbers (3 warning, 2 error)
        cv2.setLogLevel(3 if verbose else 2)


# Registered in pipeline order, which is the order `--help` lists them in.
for _command in (
    prepare_cmd,
    encode_boxes_cmd,
    train_cmd,
    sample_cmd,
    filter_cmd,
    balance_cmd,
    evaluate_cmd,
    metrics_cmd,
    export_cmd,
    push_cmd,
    demo_cmd,
):
    _command.register(app)


def main() -> None:
    """Console-script entry point."""
    app()
