"""Seeded, grouped train/val/test splits.

Samples that share a group key (for example the four-digit fruit id of the Lemons dataset, so
that several views of one lemon never straddle two splits) always land in the same split.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from defectsynth.errors import OptionError

DEFAULT_SPLIT_NAMES = ("train", "val", "test")


def parse_fractions(text: str) -> list[float]:
    """Parse ``"0.7,0.2,0.1"`` into fractions that sum to 1 (one to three values)."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise OptionError(f"--split-fractions: expected fractions like 0.7,0.2,0.1, got {text!r}") from None
    if not 1 <= len(values) <= len(DEFAULT_SPLIT_NAMES) or any(v < 0 or not np.isfinite(v) for v in values):
        raise OptionError(f"--split-fractions: give one to three non-negative fractions, got {text!r}")
    if abs(sum(values) - 1.0) > 1e-6:
        raise OptionError(f"--split-fractions: fractions must sum to 1, got {text!r} (sum {sum(values):g})")
    return values


def grouped_split(
    stems: Sequence[str],
    fractions: Sequence[float],
    seed: int = 0,
    group_of: Callable[[str], str] | None = None,
    names: Sequence[str] = DEFAULT_SPLIT_NAMES,
) -> dict[str, list[str]]:
    """Assign ``stems`` to splits of about ``fractions`` of the samples, whole groups at a time.

    Groups are shuffled with ``seed``; each goes to the split whose share is furthest below its
    target, so the sizes come out as close to the fractions as whole groups allow.
    """
    group_of = group_of or (lambda s: s)
    groups: dict[str, list[str]] = {}
    for stem in sorted(stems):
        groups.setdefault(group_of(stem), []).append(stem)
    keys = sorted(groups)
    order = np.random.default_rng(seed).permutation(len(keys))
    targets = np.asarray(fractions, dtype=float) * len(stems)
    counts = np.zeros(len(fractions))
    result: dict[str, list[str]] = {names[i]: [] for i in range(len(fractions))}
    for index in order:
        members = groups[keys[index]]
        deficit = targets - counts
        deficit[targets == 0] = -np.inf
        split = int(np.argmax(deficit))
        counts[split] += len(members)
        result[names[split]].extend(members)
    return {name: sorted(members) for name, members in result.items()}
