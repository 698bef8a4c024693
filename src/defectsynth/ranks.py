"""Failures of one process seen by all: the processes of an ``accelerate launch`` end together.

A process that fails on its own (a non-finite loss, a full disk, any exception) while the others
go on to the next collective leaves them waiting for it until the launcher's timeout. Code that
can fail on some processes only runs inside :func:`one_outcome`: at the end of the block every
process reports how it went, and when any failed, every process raises the same one-line
:class:`~defectsynth.errors.DefectsynthError` (the lowest failing rank's), so the CLI prints the
same line and exits with code 2 everywhere. A failing process keeps its own exception chained
(``DEFECTSYNTH_DEBUG=1`` shows its traceback).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import defectsynth.errors as errors
from defectsynth.errors import DefectsynthError, ProcessFailedError


def process_state():
    """accelerate's ``PartialState``, on the CPU when the launcher says so (``ACCELERATE_USE_CPU``) or no
    GPU is there, so that every later ``Accelerator`` of the process agrees with it."""
    import torch
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    return PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available())


def report(error: BaseException | None, rank: int) -> tuple[str, str, str | None] | None:
    """What one process tells the others: (error class name, message, path) or None when it went well."""
    if error is None:
        return None
    if isinstance(error, DefectsynthError):
        return type(error).__name__, error.reason, None if error.path is None else str(error.path)
    if isinstance(error, OSError) and error.strerror:
        where = f" {error.filename}" if error.filename else ""
        return "ProcessFailedError", f"process {rank}: cannot write{where} ({error.strerror})", None
    return "ProcessFailedError", f"process {rank} failed: {errors.summary(error)}", None


def raise_reported(report: tuple[str, str, str | None], cause: BaseException | None = None) -> None:
    """Raise the error a process reported (the same class and message on every process)."""
    name, reason, path = report
    kind = getattr(errors, name, None)
    if not (isinstance(kind, type) and issubclass(kind, DefectsynthError)):
        kind = ProcessFailedError
    raise kind(reason, path) from cause


@contextmanager
def one_outcome(state: Any) -> Iterator[None]:
    """Run the block on every process of ``state`` (an accelerate ``PartialState`` or
    ``Accelerator``); when it fails on any of them, raise the same error on all of them.

    Every process must reach the end of the block (it is a collective): keep collectives of
    their own (a gradient all-reduce, a barrier) out of it. With one process it only turns an
    unexpected exception into nothing new: errors pass unchanged.
    """
    if state.num_processes == 1:
        yield
        return
    from accelerate.utils import gather_object

    error: BaseException | None = None
    try:
        yield
    except Exception as err:  # every kind: a rank that fails in any way must not leave the others waiting
        error = err
    reports = gather_object([report(error, state.process_index)])
    first = next((r for r in reports if r is not None), None)
    if first is not None:
        raise_reported(first, error)
