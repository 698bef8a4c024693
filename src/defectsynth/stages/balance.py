"""The ``balance`` stage: :func:`defectsynth.balancing.balance` (a generation plan, or real and
synthetic data merged), with ``split="all"`` meaning every stem as on the command line."""

from __future__ import annotations

from pathlib import Path


def balance(
    dataset: str | Path,
    n_balance: int | str | None = None,
    plan_out: str | Path | None = None,
    synthetic: str | Path | None = None,
    out: str | Path | None = None,
    split: str | None = "train",
    overwrite: bool = False,
    progress: bool = False,
):
    """:func:`defectsynth.balancing.balance`; ``split`` ``"all"`` (or None): every stem of ``dataset``."""
    from defectsynth import balancing

    return balancing.balance(
        dataset,
        n_balance=n_balance,
        plan_out=plan_out,
        synthetic=synthetic,
        out=out,
        split=None if split == "all" else split,
        overwrite=overwrite,
        progress=progress,
    )
