"""Process setup for Accelerate: one process, several GPUs, or several CPU processes.

Accelerate only forms a CPU process group when told to use the CPU; a launcher that starts several
processes on a machine without a GPU (``accelerate launch --multi_gpu --num_processes 2``,
``torchrun --nproc_per_node 2``) is detected here, so the same command works on CPUs and GPUs.
"""

from __future__ import annotations

import os

import torch

from defectsynth.errors import OptionError

PRECISIONS = ("no", "fp16", "bf16")  # what Accelerate takes; train's --mixed-precision adds auto


def launched_on_cpu_only() -> bool:
    """True when a launcher started several processes and no CUDA device is available."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()


def native_bf16(device_type: str) -> bool:
    """Whether ``device_type`` computes bf16 natively: CUDA compute capability 8 (Ampere) or newer, a
    CPU with AVX512-BF16 or AMX. Elsewhere bf16 is emulated and slower than float32."""
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.get_device_capability()[0] >= 8
    if device_type == "cpu":
        return any(
            getattr(torch.cpu, name, lambda: False)()
            for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        )
    return False


def resolve_precision(mixed_precision: str) -> str:
    """``auto``: the launcher's choice under ``accelerate launch`` (``ACCELERATE_MIXED_PRECISION``),
    else bf16 where the device runs it natively, else no. Other values pass unchanged."""
    if mixed_precision != "auto":
        return mixed_precision
    launcher = os.environ.get("ACCELERATE_MIXED_PRECISION", "").lower()
    if launcher:
        if launcher not in PRECISIONS:
            raise OptionError(
                f"--mixed-precision auto: the launcher's ACCELERATE_MIXED_PRECISION={launcher!r} is not no, "
                "fp16 or bf16"
            )
        return launcher
    from accelerate.utils import parse_flag_from_env

    on_cpu = parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available()
    return "bf16" if native_bf16("cpu" if on_cpu else "cuda") else "no"


def make_accelerator(mixed_precision: str = "no", log_with: list | None = None):
    """An ``Accelerator`` at ``mixed_precision`` (``log_with``: its trackers, see
    :mod:`defectsynth.diffusion.trackers`). Accelerate keeps one precision per process and
    refuses another; a process that trains again at another precision (the Python API, a
    benchmark) gets its accelerator state renewed, the process group kept."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    if AcceleratorState._shared_state.get("_mixed_precision", mixed_precision) != mixed_precision:
        AcceleratorState._reset_state(reset_partial_state=False)
    return Accelerator(mixed_precision=mixed_precision, cpu=launched_on_cpu_only(), log_with=log_with)


def make_state():
    from accelerate import PartialState

    return PartialState(cpu=launched_on_cpu_only())
