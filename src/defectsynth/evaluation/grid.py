"""The #R/#S grid of the thesis (section 7.1.2) and the seeded, nested subsets behind it.

A mix is written in the thesis' notation, ``R=<real>,S=<synthetic>``:

- ``R``: ``all`` (every real training pair left after the validation hold-out), ``0``, a count
  ``N`` or a share ``N%`` of the real training pairs;
- ``S``: ``0``, ``all``, ``R`` (as many synthetic pairs as real ones: the thesis' "same amount"),
  a count ``N`` or a share ``N%`` of the synthetic dataset.

Subsets are prefixes of one seeded permutation per dataset, so they are nested: the 100
synthetic pairs of ``S=100`` are inside the 400 of ``S=400``, and the same in every repeat.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from defectsynth.data.splits import grouped_split
from defectsynth.errors import OptionError

# The baseline and the seven configurations of the thesis (section 7.1.2; "all" = its 1000 pairs).
DEFAULT_MIXES = (
    "R=all,S=0",
    "R=0,S=all",
    "R=0,S=R",
    "R=all,S=R",
    "R=all,S=100",
    "R=all,S=400",
    "R=all,S=700",
    "R=all,S=all",
)
_VALUE = re.compile(r"^(all|R|\d+|\d+(\.\d+)?%)$")


@dataclass(frozen=True)
class Mix:
    """One training configuration: how many real (``real``) and synthetic (``synthetic``) pairs."""

    real: str
    synthetic: str

    @property
    def text(self) -> str:
        return f"R={self.real},S={self.synthetic}"

    @property
    def slug(self) -> str:
        """A file-name-safe form, e.g. ``R-all_S-100``."""
        return self.text.replace("=", "-").replace(",", "_").replace("%", "pct")

    @property
    def is_baseline(self) -> bool:
        return self.synthetic == "0"

    def counts(self, num_real: int, num_synthetic: int) -> tuple[int, int]:
        """(#R, #S) for ``num_real`` real training pairs and a synthetic dataset of ``num_synthetic``."""
        r = _count(self.real, num_real, num_real, f"--mix {self.text}: R", "real training pairs")
        s = _count(self.synthetic, num_synthetic, num_real, f"--mix {self.text}: S", "synthetic pairs")
        return r, s


def _count(value: str, available: int, real: int, where: str, what: str) -> int:
    if value == "all":
        return available
    if value == "R":
        wanted = real
    elif value.endswith("%"):
        wanted = int(round(float(value[:-1]) / 100 * available))
    else:
        wanted = int(value)
    if wanted > available:
        raise OptionError(
            f"{where}={value} needs {wanted} {what} but only {available} exist (use a smaller count or a share "
            "like 40%)"
        )
    return wanted


def parse_mix(text: str) -> Mix:
    """Parse ``"R=all,S=100"`` (spaces and case of ``all`` are forgiven)."""
    parts = dict(p.split("=", 1) for p in text.replace(" ", "").split(",") if "=" in p)
    if set(parts) != {"R", "S"} or text.replace(" ", "").count(",") != 1:
        raise OptionError(f"--mix {text!r}: write R=<all|0|N|N%>,S=<0|all|R|N|N%>, e.g. R=all,S=100")
    real, synthetic = (parts[k].lower() if parts[k].lower() == "all" else parts[k] for k in ("R", "S"))
    for key, value in (("R", real), ("S", synthetic)):
        if not _VALUE.match(value) or (key == "R" and value == "R"):
            raise OptionError(
                f"--mix {text!r}: {key}={value} is not one of all, 0, N, N%" + (", R" if key == "S" else "")
            )
        if value.endswith("%") and float(value[:-1]) > 100:
            raise OptionError(f"--mix {text!r}: {key}={value} is more than 100%")
    mix = Mix(str(int(real)) if real.isdigit() else real, str(int(synthetic)) if synthetic.isdigit() else synthetic)
    if mix.real == "0" and mix.synthetic == "0":
        raise OptionError(f"--mix {text!r}: a configuration needs some training data (R=0 and S=0)")
    return mix


def parse_mixes(texts: Sequence[str] | None) -> list[Mix]:
    """The mixes in order, duplicates dropped; None gives :data:`DEFAULT_MIXES`."""
    mixes: list[Mix] = []
    for text in texts or DEFAULT_MIXES:
        mix = parse_mix(text)
        if mix not in mixes:
            mixes.append(mix)
    return mixes


def seeded_order(stems: Sequence[str], seed: int, salt: str) -> list[str]:
    """``stems`` in a random order fixed by (seed, salt); prefixes of it are the nested subsets."""
    ordered = sorted(stems)
    rng = np.random.default_rng([seed, zlib.crc32(salt.encode("utf-8"))])
    return [ordered[i] for i in rng.permutation(len(ordered))]


VAL_FRACTION = 0.2  # the share of the real train split held out to choose the best epoch (evaluate, filter)


def holdout(train: Sequence[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Split the real train split into (train, validation) with ``fraction`` held out, seeded."""
    if len(train) < 2:
        raise OptionError(
            f"the real train split has {len(train)} image(s): at least 2 are needed to hold out a validation set"
        )
    parts = grouped_split(train, [1 - fraction, fraction], seed=seed, names=("train", "val"))
    if not parts["val"]:  # tiny sets: hold out at least one image
        parts["val"] = [parts["train"].pop()]
    return parts["train"], parts["val"]


@dataclass(frozen=True)
class Cell:
    """One training run of the grid: a model on a mix (of one synthetic source), one repeat.

    ``binary_class`` is set in per-class-binary mode (one network per defect class).
    """

    model: str
    mix: Mix
    synthetic: str | None
    repeat: int
    binary_class: int | None = None

    @property
    def key(self) -> str:
        """A unique file-name-safe name, e.g. ``fpn__R-all_S-100__synth__r0``."""
        parts = [self.model, self.mix.slug, self.synthetic or "real", f"r{self.repeat}"]
        if self.binary_class is not None:
            parts.append(f"c{self.binary_class}")
        return "__".join(parts)


def build_cells(
    models: Sequence[str],
    mixes: Sequence[Mix],
    synthetic: Sequence[str],
    repeats: int,
    binary_classes: Sequence[int] | None = None,
) -> list[Cell]:
    """Every cell of the grid: baselines once per model, other mixes once per synthetic source."""
    cells = []
    for model in models:
        for mix in mixes:
            sources: list[str | None] = [None] if mix.is_baseline else list(synthetic)
            for source in sources:
                for repeat in range(repeats):
                    for cls in binary_classes if binary_classes is not None else [None]:
                        cells.append(Cell(model, mix, source, repeat, cls))
    return cells
