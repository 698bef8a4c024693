"""The report folder of ``evaluate`` (layout: :mod:`defectsynth.evaluation.report`): every file it may
hold, whether a folder can take an evaluation (new, resumable, or replaced with ``--overwrite``),
and (re)opening it with its ``config.json``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from defectsynth.data.files import holds_no_files, read_json, remove_temp_leftovers, write_json
from defectsynth.errors import OutputExistsError
from defectsynth.formats.dataset import check_replaceable

# Every file evaluate writes in its report folder (formats.dataset.in_layout patterns): what --overwrite may clear.
REPORT_LAYOUT = (
    "config.json",
    "cells/*.json",
    "models/*/config.json",
    "models/*/model.safetensors",
    "report.json",
    "report.csv",
    "cells.csv",
    "report.md",
    "chart_*.png",
)


def check_report_out(out: Path, config: dict[str, Any], overwrite: bool) -> bool:
    """Whether ``out`` can hold this evaluation (new, or resumable); True when old cells must go."""
    config_path = out / "config.json"
    if out.exists() and not config_path.is_file() and not holds_no_files(out):
        raise OutputExistsError("--out exists and is not an evaluation report folder; choose another folder", out)
    if not config_path.is_file():
        return False
    old = read_json(config_path).get("protocol", {})
    if old == config["protocol"]:
        return False
    if not overwrite:
        changed = sorted(k for k in config["protocol"] if old.get(k) != config["protocol"][k])
        raise OutputExistsError(
            f"--out holds an evaluation with other options ({', '.join(changed)}); use --overwrite to start over", out
        )
    check_replaceable(out, REPORT_LAYOUT, "report folder")
    return True


def open_report_out(out: Path, config: dict[str, Any], clear: bool) -> None:
    """Create ``out/cells/`` (emptied, with the saved models, when ``clear``) and write ``config.json``."""
    if clear:
        shutil.rmtree(out / "cells", ignore_errors=True)
        shutil.rmtree(out / "models", ignore_errors=True)
    (out / "cells").mkdir(parents=True, exist_ok=True)
    remove_temp_leftovers(out)  # a killed run's half-written cell files
    write_json(out / "config.json", config)
