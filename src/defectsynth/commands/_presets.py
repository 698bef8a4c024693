"""``--preset NAME`` on train, sample and evaluate: the option, which options the user typed, and
the table of the settings applied (the library resolves them: :mod:`defectsynth.presets`)."""

from __future__ import annotations

import contextvars
from typing import Annotated, Optional

import typer
from rich.table import Table

from defectsynth.commands._summary import console
from defectsynth.presets import COMMAND_LABELS, PRESETS, PresetRequest, resolve_preset, settings_rows

_CONTEXT: contextvars.ContextVar[typer.Context | None] = contextvars.ContextVar(
    "defectsynth_preset_context", default=None
)


def _remember_context(ctx: typer.Context, value: Optional[str]) -> Optional[str]:
    _CONTEXT.set(ctx)  # read by chosen_preset once every option is parsed
    return value


PresetOpt = Annotated[
    Optional[str],
    typer.Option(
        "--preset",
        callback=_remember_context,
        show_default=False,
        help=f"A paper's settings ({', '.join(PRESETS)}; docs/presets/): fills every option not given on the command "
        "line; "
        "the settings applied are printed and recorded.",
    ),
]


def typed_options(ctx: typer.Context) -> frozenset[str]:
    """The parameter names given on the command line (or by environment), not left at their defaults."""
    # by name: typer vendors its own click, whose ParameterSource is not click's
    return frozenset(
        p.name
        for p in ctx.command.params
        if getattr(ctx.get_parameter_source(p.name), "name", "DEFAULT") not in ("DEFAULT", "DEFAULT_MAP")
    )


def chosen_preset(name: str | None, command: str, finetune: bool = False) -> PresetRequest | None:
    """The :class:`PresetRequest` for the library call (None without ``--preset``), after printing
    the settings it applies; an unknown preset or one without ``command`` settings fails here."""
    if name is None:
        return None
    ctx = _CONTEXT.get()
    given = typed_options(ctx) - {"preset"} if ctx is not None else frozenset()
    record = resolve_preset(name, command, given, finetune)
    table = Table(title=f"--preset {name}: {COMMAND_LABELS[command]} settings", title_justify="left")
    for column in ("option", "value", "paper source", "note"):
        table.add_column(column)
    for option, value, source, note in settings_rows(record):
        table.add_row(
            f"--{option.replace('_', '-')}",
            value,
            source,
            note,
            style="dim" if option in record.overridden or option in record.inherited else None,
        )
    console.print(table)
    return PresetRequest(name, given)
