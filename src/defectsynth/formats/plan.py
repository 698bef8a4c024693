"""The balance plan file that ``balance --plan-out`` writes and ``sample --plan`` / ``sample-sd
--plan`` read (JSON)::

    {"format": 1, "dataset": "<absolute path>", "split": "train" | null, "n_balance": N,
     "plan": [{"stem": "<condition stem>", "repeats": k}, ...]}

Stems are listed in the order Algorithm 1 first generates from them
(:func:`~defectsynth.balancing.plan_balance`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from defectsynth.data.files import read_json
from defectsynth.data.model import check_stem
from defectsynth.errors import DatasetError
from defectsynth.formats.dataset import check_output_file

PLAN_FORMAT = 1


def read_plan(path: str | Path) -> list[tuple[str, int]]:
    """Read and validate a plan file written by :func:`~defectsynth.balancing.plan_balance`: [(condition stem, repeats),
    ...]."""
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("plan"), list):
        raise DatasetError(
            'not a balance plan: expected {"format": 1, "plan": [{"stem": ..., "repeats": ...}, ...]}', path
        )
    if data.get("format") != PLAN_FORMAT:
        raise DatasetError(f"plan format {data.get('format')!r} is not supported (expected {PLAN_FORMAT})", path)
    plan: list[tuple[str, int]] = []
    seen: set[str] = set()
    for k, entry in enumerate(data["plan"]):
        if not isinstance(entry, dict) or set(entry) != {"stem", "repeats"}:
            raise DatasetError(f'plan entry {k} must be {{"stem": ..., "repeats": ...}}, got {entry!r}', path)
        stem, repeats = check_stem(entry["stem"], f"{path}: plan entry {k}"), entry["repeats"]
        if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
            raise DatasetError(f"plan entry {k} ({stem}): repeats must be a positive integer, got {repeats!r}", path)
        if stem in seen:
            raise DatasetError(f"plan entry {k}: stem {stem!r} is listed twice", path)
        seen.add(stem)
        plan.append((stem, repeats))
    return plan


def _is_plan(path: Path) -> bool:
    try:
        read_plan(path)
    except DatasetError:
        return False
    return True


def plan_dataset(path: str | Path) -> tuple[Path, str | None]:
    """The ``(dataset folder, split)`` a plan file was made from; the folder must be a dataset."""
    data = read_json(path)
    folder = data.get("dataset") if isinstance(data, dict) else None
    if not isinstance(folder, str) or not (Path(folder) / "dataset.json").is_file():
        raise DatasetError(f"the plan's dataset {folder!r} is not a dataset folder", path)
    split = data.get("split")
    return Path(folder), split if isinstance(split, str) else None


def planned_samples(plan: list[tuple[str, int]]) -> list[tuple[str, str]]:
    """(output stem, condition stem) for every generation of ``plan``: ``<stem>-<k>`` for k < repeats,
    the naming ``sample`` uses for repeated conditions. Its length is the plan's total."""
    return [(f"{stem}-{k}", stem) for stem, repeats in plan for k in range(repeats)]


def plan_json(dataset: Path, split: str | None, n_balance: int, plan: list[tuple[str, int]]) -> dict[str, Any]:
    """The plan file's content (see the module docstring)."""
    return {
        "format": PLAN_FORMAT,
        "dataset": str(dataset.resolve()),
        "split": split,
        "n_balance": n_balance,
        "plan": [{"stem": stem, "repeats": k} for stem, k in plan],
    }


def check_plan_out(path: Path, overwrite: bool) -> None:
    """``--plan-out``: a new file, or with ``overwrite`` an existing plan (anything else is kept)."""
    check_output_file(path, overwrite, "balance plan", _is_plan)
