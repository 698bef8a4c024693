"""User-facing errors.

Every problem a user can fix (a bad file, a wrong option, a missing dependency) is raised as a
:class:`DefectsynthError`. Its message is one line that names the file or option and the problem.
The CLI prints it in red and exits with code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class DefectsynthError(Exception):
    """A problem with the user's input, printed as one line, exit code 2."""

    exit_code = 2

    def __init__(self, message: str, path: str | Path | None = None):
        self.path = Path(path) if path is not None else None
        self.reason = message
        super().__init__(f"{path}: {message}" if path is not None else message)


class DatasetError(DefectsynthError):
    """A dataset folder (or a raw source) breaks the data contract."""


class OptionError(DefectsynthError):
    """An option value or a combination of options is invalid."""


class OutputExistsError(DefectsynthError):
    """The output folder exists and `--overwrite` was not given."""


class OutputLockedError(DefectsynthError):
    """Another process is writing the same output folder (it holds the folder's lock)."""


class WriteError(DefectsynthError):
    """An output file could not be written (a full disk, no permission); what was written before stays."""


class ProcessFailedError(DefectsynthError):
    """Another process of a multi-process run failed; every process stops with its one line."""


class MissingDependencyError(DefectsynthError):
    """An optional package or a local weight file is missing."""


class TrainingError(DefectsynthError):
    """A training run cannot go on (a non-finite loss, a failed write); the last good state is kept."""


def first_line(err: BaseException) -> str:
    """The first line of ``err``'s message (surrounding blank space dropped), or its type's name when the
    message is empty: the part of a library's error that fits in our one-line errors."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def summary(err: BaseException) -> str:
    """``"<ExceptionType>: <first line of its message>"`` (just the type for an empty message), for
    one-line errors that wrap a library's."""
    return f"{type(err).__name__}: {first_line(err)}" if str(err).strip() else type(err).__name__
