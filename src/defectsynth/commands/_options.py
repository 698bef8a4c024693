"""Options shared by several commands, defined once (as ``hf``'s ``_cli_utils.py`` does)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from defectsynth.errors import OptionError
from defectsynth.progress import stderr_console

OutOpt = Annotated[
    Path,
    typer.Option("--out", "-o", help="Output folder (created atomically; refused if it exists unless --overwrite)."),
]
OverwriteOpt = Annotated[
    bool, typer.Option("--overwrite", help="Replace an existing output folder written by defectsynth.")
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed: the same seed gives the same files.")]
SizeOpt = Annotated[
    Optional[str],
    typer.Option("--size", help="Output size: N for NxN or WIDTHxHEIGHT (e.g. 352x128). Default: the source's own."),
]
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress bars.")]
SplitNameOpt = Annotated[Optional[str], typer.Option("--split", help="Use only the stems of this split (e.g. train).")]
DatasetArg = Annotated[
    Path,
    typer.Argument(
        help="A dataset folder (dataset.json, images/, masks/, boxes/), e.g. made by `defectsynth prepare`."
    ),
]


class ReportTo(str, Enum):
    none = "none"
    tensorboard = "tensorboard"
    wandb = "wandb"


ReportToOpt = Annotated[
    ReportTo,
    typer.Option(
        "--report-to",
        help=(
            "Also log loss and lr per step and the preview grids to TensorBoard (<run>/tensorboard/) or "
            "Weights & Biases, through Accelerate's trackers; needs pip install 'defectsynth\\[tensorboard]' "
            "or 'defectsynth\\[wandb]'. See docs/trackers.md."
        ),
    ),
]


def renamed_option(old: str, new: str, old_value: Any, new_value: Any, default: Any = None) -> Any:
    """The value of option ``new`` whose old spelling ``old`` is still accepted as a hidden option for
    one release: ``old_value`` when given (with a one-line deprecation warning on stderr), else ``new_value``."""
    if old_value is None:
        return new_value
    if new_value != default:
        raise OptionError(f"{old} is the deprecated name of {new}: give only {new}")
    stderr_console.print(
        f"[yellow]warning:[/] {old} is deprecated, use {new} (the old name goes in the next release)",
        soft_wrap=True,
        highlight=False,
    )
    return old_value
