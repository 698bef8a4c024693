"""``--config FILE`` for any command: the file's options become click's ``default_map``.

:data:`ConfigOpt` is an eager option, so click reads it before every other parameter; its callback
reads the file (:func:`defectsynth.config_files.read_config`), refuses a key that is not one of the
command's parameters and a value the parameter's type rejects (one line naming the file and the
key), and puts the rest into ``ctx.default_map``. Click (Typer's own copy) then takes a parameter's value from the
command line when it is given there, else from the file, else its default: the command line wins.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from defectsynth.errors import OptionError


def _load(ctx: typer.Context, param: typer.CallbackParam, value: Optional[Path]) -> Optional[Path]:
    from defectsynth.config_files import check_keys, read_config

    if value is None or ctx.resilient_parsing:
        return value
    options = read_config(value)
    params = {p.name: p for p in ctx.command.params if p.name != param.name}
    check_keys(options, params, value, ctx.info_name or ctx.command.name or "this command")
    for name, raw in options.items():
        if raw is not None:
            _check_value(ctx, params[name], raw, value)
    ctx.default_map = {**(ctx.default_map or {}), **options}
    return value


def _check_value(ctx: typer.Context, param: Any, raw: Any, path: Path) -> None:
    """Convert ``raw`` as the parser will, so a wrong value is refused naming the file and the key
    (Typer's own core coerces through its runtime parameter, click's through ``type_cast_value``)."""
    if hasattr(param, "get_runtime_param"):
        convert = lambda: param.get_runtime_param().coerce(raw, param=param, ctx=ctx)  # noqa: E731
    elif hasattr(param, "type_cast_value"):
        convert = lambda: param.type_cast_value(ctx, raw)  # noqa: E731
    else:  # the parser still refuses it, naming the option
        return
    try:
        convert()
    except typer.BadParameter as err:
        raise OptionError(f"--config {path}: key {param.name!r}: {err.format_message()}") from None


ConfigOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--config",
        help="TOML or YAML file (or a run's run.json) of option values, keys as the option names (batch_size or "
        "batch-size): "
        "they fill the options not given on the command line, which wins. See docs/config-files.md.",
        is_eager=True,
        callback=_load,
        show_default=False,
    ),
]
