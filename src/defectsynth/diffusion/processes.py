"""Process setup for Accelerate: one process, several GPUs, or several CPU processes.

Accelerate only forms a CPU process group when told to use the CPU; a launcher that starts several
processes on a machine without a GPU (``accelerate launch --multi_gpu --num_processes 2``,
``torchrun --nproc_per_node 2``) is detected here, so the same command works on CPUs and GPUs.
"""

from __future__ import annotations

import os

import torch


def launched_on_cpu_only() -> bool:
    """True when a launcher started several processes and no CUDA device is available."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()


def make_accelerator(mixed_precision: str = "no"):
    from accelerate import Accelerator

    return Accelerator(mixed_precision=mixed_precision, cpu=launched_on_cpu_only())


def make_state():
    from accelerate import PartialState

    return PartialState(cpu=launched_on_cpu_only())
