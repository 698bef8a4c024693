"""The machine-readable side of every benchmark: ``--json PATH`` writes what it printed as JSON.

``benchmarks/run.py`` starts each benchmark as a subprocess with ``--json`` and collects the files.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", type=Path, help="Also write the results to this JSON file.")


def peak_memory() -> dict[str, float | None]:
    """Peak resident memory of this process (MiB) and, where CUDA is used, torch's peak allocation (MiB)."""
    import sys

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    cuda = None
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        cuda = torch.cuda.max_memory_allocated() / 2**20
    return {"peak_rss_mib": round(rss, 1), "cuda_max_allocated_mib": None if cuda is None else round(cuda, 1)}


def write_results(path: Path | None, results: dict[str, Any]) -> None:
    """Write ``results`` (plus this process's peak memory) to ``path`` when given."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**results, "memory": peak_memory()}, indent=1) + "\n", encoding="utf-8")


def run_workers(script: str, commands: list[tuple[list[str], Path]], jobs: int) -> None:
    """Run ``python script ARGS`` for every (ARGS, log file) of ``commands``, at most ``jobs`` at a
    time, each writing its output to its log; returns when all have ended."""
    running: list[subprocess.Popen] = []
    for argv, log in commands:
        while len(running) >= jobs:
            running = [p for p in running if p.poll() is None]
            time.sleep(2)
        with open(log, "w") as handle:
            running.append(subprocess.Popen([sys.executable, script, *argv], stdout=handle, stderr=subprocess.STDOUT))
    for p in running:
        p.wait()


def recipe_names(parser: argparse.ArgumentParser, text: str, known) -> list[str]:
    """The comma-separated recipe names of ``text``; an unknown one is a usage error naming the known ones."""
    names = text.split(",")
    unknown = [r for r in names if r not in known]
    if unknown:
        parser.error(f"--recipes: unknown {unknown}; known: {', '.join(known)}")
    return names
