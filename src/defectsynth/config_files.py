"""Config files: the keyword arguments of a command, read from a TOML, YAML or JSON file.

A config file is one flat table whose keys are the option names of the command (the keyword
arguments of :func:`defectsynth.train` / :func:`defectsynth.sample`; ``batch_size`` or
``batch-size``) and whose values are what the options take::

    # train.toml
    dataset = "data/toy"
    model = "small"
    batch_size = 16
    epochs = 200

- ``.toml``: read with :mod:`tomllib` (Python 3.11+; ``tomli`` on 3.10). TOML has no null: leave an
  option out instead.
- ``.yaml`` / ``.yml``: read with PyYAML's ``safe_load`` when PyYAML is installed.
- ``.json``: a JSON object, or a run folder's ``run.json``, whose ``args`` (what ``train`` was called
  with) are the config: ``train --config runs/a/run.json --out runs/b`` trains the same model again.

``train --config`` / ``sample --config`` fill the options not given on the command line (the
command line wins); from Python, ``defectsynth.train(**read_config("train.toml"))``.
"""

from __future__ import annotations

import importlib
import inspect
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from defectsynth.data.files import read_text
from defectsynth.errors import DatasetError, MissingDependencyError, OptionError

SUFFIXES = (".toml", ".yaml", ".yml", ".json")
# Keys that run.json files written before they were left out of ``args`` hold but no command takes.
RECORDED_ONLY = ("mode_defaults",)


def _parse(text: str, path: Path, kind: str, modules: tuple[str, ...], load: str, error: str, missing: str) -> Any:
    """``module.<load>(text)`` with the first of ``modules`` that imports; one line naming ``path``
    when none does (``missing``) or the text is malformed (the module's ``error`` class)."""
    for name in modules:
        try:
            module = importlib.import_module(name)
            break
        except ImportError:
            continue
    else:
        raise MissingDependencyError(missing, path)
    try:
        return getattr(module, load)(text)
    except getattr(module, error) as err:
        raise DatasetError(f"malformed {kind} ({' '.join(str(err).split())})", path) from None


def _toml(text: str, path: Path) -> Any:
    # tomllib: Python 3.11+; tomli is the same reader for 3.10
    missing = "reading TOML on Python 3.10 needs tomli: pip install tomli (or use a YAML or JSON file)"
    return _parse(text, path, "TOML", ("tomllib", "tomli"), "loads", "TOMLDecodeError", missing)


def _yaml(text: str, path: Path) -> Any:
    missing = "reading YAML needs PyYAML: pip install pyyaml (or use a TOML file)"
    return _parse(text, path, "YAML", ("yaml",), "safe_load", "YAMLError", missing)


def _json(text: str, path: Path) -> Any:
    try:
        data = json.loads(text)
    except ValueError as err:
        raise DatasetError(f"malformed JSON ({err})", path) from None
    if isinstance(data, dict) and isinstance(data.get("args"), dict) and "format" in data:  # a run.json
        return {k: v for k, v in data["args"].items() if k not in RECORDED_ONLY}
    return data


READERS: dict[str, Callable[[str, Path], Any]] = {".toml": _toml, ".yaml": _yaml, ".yml": _yaml, ".json": _json}


def read_config(path: str | Path) -> dict[str, Any]:
    """The options in the config file ``path``: {option name (underscores): value}.

    Raises a one-line :class:`~defectsynth.errors.DefectsynthError` naming the file for an unknown
    suffix, a missing file, malformed text, a top level that is not a table, a nested table or a
    key given twice (``batch_size`` and ``batch-size``).
    """
    path = Path(path)
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise OptionError(f"--config: {path}: expected a .toml, .yaml, .yml or .json file")
    data = reader(read_text(path), path)
    if data is None:  # an empty YAML file
        data = {}
    if not isinstance(data, dict):
        raise DatasetError(f"a config file holds one table of options, not a {type(data).__name__}", path)
    options: dict[str, Any] = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name in options:
            raise DatasetError(f"option {name!r} is given twice", path)
        if isinstance(value, dict):
            raise DatasetError(f"key {key!r}: a config file is one flat table of options, not nested tables", path)
        options[name] = value
    return options


def check_keys(options: dict[str, Any], known: Iterable[str], path: str | Path, command: str) -> None:
    """Refuse the first key of ``options`` that is not one of ``known`` (the command's options)."""
    known = set(known)
    for name in options:
        if name not in known:
            raise OptionError(
                f"--config {path}: unknown key {name!r}: {command} has no option --{name.replace('_', '-')}"
            )


def function_options(function: Callable) -> list[str]:
    """The keyword arguments of a library function (what a config file for it may hold)."""
    return [
        p.name
        for p in inspect.signature(function).parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
