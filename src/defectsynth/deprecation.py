"""Renamed keyword arguments, accepted under their old names for one release with a DeprecationWarning.

The CLI keeps the old option spellings as hidden options (``commands/_options.py``,
:func:`~defectsynth.commands._options.renamed_option`); this is the same for Python callers.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def renamed_keywords(**renames: str) -> Callable[[F], F]:
    """Decorator: accept each old keyword name (the key) for its new name (the value), with a
    ``DeprecationWarning``; giving both is a ``TypeError``, as Python does for a repeated argument."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            for old, new in renames.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(f"{fn.__name__}() got both {old!r} (its deprecated name) and {new!r}")
                    warnings.warn(
                        f"{fn.__name__}(): the keyword {old!r} is deprecated, use {new!r}",
                        DeprecationWarning,
                        stacklevel=2,
                    )
                    kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)

        return inner  # type: ignore[return-value]

    return wrap
