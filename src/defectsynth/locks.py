"""One writer per output: the lock every command that writes a folder (or a file) holds while it runs.

``@writes_output("train", "out")`` on a library function makes it hold the exclusive lock of its
``out`` argument for the whole call. The lock is a ``filelock.FileLock`` (``flock`` on POSIX,
``msvcrt`` on Windows) on ``<parent>/.<name>.lock``; beside it ``<parent>/.<name>.lock.json`` names
the holder (pid, host, command), so a second writer stops with one line::

    runs/toy: is being written by another process (train, pid 4242 on host lab-3): wait for it to finish or stop it

The operating system releases the lock when its process ends, even when killed (its two files
stay behind and the next writer takes them over); a normal end removes both files. Under ``accelerate launch`` only the
main process takes the lock and every process gets its answer (:func:`defectsynth.ranks.one_outcome`).

The command name is also what :class:`~defectsynth.formats.dataset.DatasetWriter` writes into its
hidden partial folder (:func:`current_command`), so the next run of the same command on the same
output can prove a leftover partial folder is its own and remove it.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import json
import os
import socket
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from defectsynth.errors import OutputLockedError

_COMMAND: contextvars.ContextVar[str | None] = contextvars.ContextVar("defectsynth_command", default=None)


def lock_paths(target: str | Path) -> tuple[Path, Path]:
    """(lock file, holder file) of ``target``: ``.<name>.lock`` and ``.<name>.lock.json`` beside it."""
    target = Path(target)
    return target.parent / f".{target.name}.lock", target.parent / f".{target.name}.lock.json"


def current_command() -> str | None:
    """The command whose :func:`output_lock` this code runs under (the innermost), or None."""
    return _COMMAND.get()


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return f"{info['command']}, pid {info['pid']} on host {info['host']}"
    except (OSError, ValueError, KeyError, TypeError):  # written a moment later, or by a killed holder
        return "pid unknown"


@contextmanager
def output_lock(target: str | Path, command: str) -> Iterator[Path]:
    """Hold the exclusive lock on writing ``target`` for the ``with`` block; yields the lock file.

    A second holder (another process, or another call in this one) raises one
    :class:`OutputLockedError` naming the holder's command, pid and host.
    """
    from filelock import FileLock, Timeout

    from defectsynth.data.files import write_json

    target = Path(target)
    lock_file, holder_file = lock_paths(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(lock_file, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise OutputLockedError(
            f"is being written by another process ({_holder(holder_file)}): wait for it to finish or stop it", target
        ) from None
    token = _COMMAND.set(command)
    try:
        write_json(holder_file, {"command": command, "pid": os.getpid(), "host": socket.gethostname()}, durable=False)
        yield lock_file
    finally:
        _COMMAND.reset(token)
        holder_file.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # removed while still held: a writer that opened it meanwhile sees
            lock_file.unlink()  # it unlinked (filelock checks) and tries anew; Windows removes it on release
        lock.release()


@contextmanager
def output_locks(targets: Sequence[Path], command: str) -> Iterator[None]:
    """:func:`output_lock` on every target, on the main process only; under ``accelerate launch``
    every process waits for the main one's answer and raises its error too."""
    with ExitStack() as stack:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            from defectsynth.ranks import one_outcome, process_state

            state = process_state()
            with one_outcome(state):
                if state.is_main_process:
                    for target in targets:
                        stack.enter_context(output_lock(target, command))
            if not state.is_main_process:
                stack.enter_context(_named(command))
        else:
            for target in targets:
                stack.enter_context(output_lock(target, command))
        yield


@contextmanager
def _named(command: str) -> Iterator[None]:
    token = _COMMAND.set(command)
    try:
        yield
    finally:
        _COMMAND.reset(token)


def writes_output(command: str, *names: str):
    """Decorator: the function holds :func:`output_lock` on each of its path arguments ``names``
    (those not None) while it runs. ``command`` names the holder in the refusal message."""

    def decorate(fn):
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def locked(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            targets = [Path(bound.arguments[name]) for name in names if bound.arguments.get(name) is not None]
            with output_locks(targets, command):
                return fn(*args, **kwargs)

        return locked

    return decorate
