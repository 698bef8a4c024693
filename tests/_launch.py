"""``accelerate launch`` with two CPU processes, for the tests of multi-process runs."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def two_cpu_processes(**env: str) -> tuple[list[str], dict[str, str]]:
    """(command prefix, environment) of ``accelerate launch`` with two CPU processes: one thread
    each, no GPU, this checkout's sources first, and a port that was free a moment ago, so that a
    port another run has just left does not fail the launch. (Not ``--main_process_port 0``: with
    accelerate 0.30, the declared floor, the second process then waits forever for port 0.)
    ``env`` adds variables."""
    environment = {
        **os.environ,
        "PYTHONPATH": str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "OMP_NUM_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": "",
        **env,
    }
    launch = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--main_process_port",
        str(_free_port()),
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
    ]
    return launch, environment


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
