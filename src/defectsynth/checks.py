"""Option checks shared by every command, so the same mistake gets the same one-line message."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from defectsynth.errors import OptionError


def check_choice(option: str, value: Any, choices: Iterable[Any]) -> None:
    """Raise ``OptionError("--opt must be one of a, b, got 'x'")`` unless ``value`` is a choice."""
    choices = list(choices)
    if value not in choices:
        raise OptionError(f"{option} must be one of {', '.join(map(str, choices))}, got {value!r}")


def check_at_least(option: str, value: int | float, minimum: int | float = 1, unit: str = "") -> None:
    """Raise ``OptionError("--opt must be at least 1, got 0")`` when ``value < minimum``."""
    if not value >= minimum:
        raise OptionError(f"{option} must be at least {minimum}{unit}, got {value}")


def check_positive(option: str, value: float) -> None:
    """Raise ``OptionError("--lr must be positive, got 0")`` unless ``value > 0`` (NaN included)."""
    if not value > 0:
        raise OptionError(f"{option} must be positive, got {value}")
