"""Class balancing (Che et al., VOC paper, section 3.3, Algorithm 1) and merging real + synthetic data.

Two uses, both measured with the entropy and CIR of :mod:`defectsynth.metrics.distribution`:

- :func:`plan_balance` runs Algorithm 1 on a real dataset and writes a *generation plan*: which
  condition stems to generate from, how many times. ``sample RUN --plan plan.json`` executes it.
  Plan file (JSON)::

      {"format": 1, "dataset": "<absolute path>", "split": "train" | null, "n_balance": N,
       "plan": [{"stem": "<condition stem>", "repeats": k}, ...]}

  Stems are listed in the order Algorithm 1 first generates from them; :func:`read_plan` reads it
  (:mod:`defectsynth.formats.plan`: the plan file's reader, writer and checks).
- :func:`merge_datasets` merges a real and a synthetic dataset folder into one (every real split
  kept, selected synthetic stems added to the ``train`` split and listed in a ``synthetic`` split),
  choosing the synthetic samples that bring the classes closest to ``n_balance`` when it is given
  (:func:`select_balanced`).

A class is present in an image when its mask holds a pixel of it or a box of it is listed
(:func:`~defectsynth.metrics.distribution.classes_in`); background is not a class.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from defectsynth.data.files import write_json
from defectsynth.data.model import Manifest
from defectsynth.errors import DatasetError, OptionError
from defectsynth.formats.conditions import copy_conditions
from defectsynth.formats.dataset import Dataset, DatasetWriter, check_output_dir, check_same_classes
from defectsynth.formats.plan import check_plan_out, plan_json, planned_samples, read_plan  # noqa: F401  (read_plan, planned_samples: documented here)
from defectsynth.locks import writes_output
from defectsynth.metrics.distribution import classes_in, count_images, distribution_report
from defectsynth.progress import track

logger = logging.getLogger(__name__)

ImageClasses = dict[str, tuple[int, ...]]  # stem -> defect class ids present, in dataset order


# -- Algorithm 1 ------------------------------------------------------------------------------------
def class_image_map(image_classes: ImageClasses) -> dict[int, list[str]]:
    """Stages 1 and 2 of Algorithm 1: each class -> the stems containing it, fewest classes first.

    Ties keep the order of ``image_classes`` (a stable sort); classes appear in the order the
    images first show them, as the dictionary of line 2 fills.
    """
    # Stage 1, lines 2-5: M <- {}; for I in D: for C in I: M[C] <- M[C] + {I}
    m: dict[int, list[str]] = {}
    for stem, classes in image_classes.items():
        for cls in classes:
            m.setdefault(cls, []).append(stem)
    # Stage 2, lines 7-8: sort M[C] by the number of classes of each image, ascending
    for cls in m:
        m[cls].sort(key=lambda stem: len(image_classes[stem]))
    return m


def balance_generations(image_classes: ImageClasses, n_balance: int) -> list[tuple[int, str]]:
    """Stage 3 of Algorithm 1: every generation as (class being balanced, condition stem), in order.

    A generated image I_gen is recorded by the real stem it was ultimately generated from: when the
    loop of line 13 reaches an earlier I_gen, its condition is that real stem, so the conditions
    cycle through the sorted M[C] (round robin) until M[C] holds ``n_balance`` images.
    """
    if n_balance < 0:
        raise OptionError(f"--n-balance must be >= 0, got {n_balance}")
    m = class_image_map(image_classes)
    generated: list[tuple[int, str]] = []  # line 10: D_gen <- {}
    for cls, members in m.items():  # line 11: for C in M
        members = list(members)
        while len(members) < n_balance:  # line 12
            for stem in list(members):  # line 13: for I in M[C]
                members.append(stem)  # lines 14-15: generate I_gen from I; M[C] <- M[C] + {I_gen}
                generated.append((cls, stem))  # line 16: D_gen <- D_gen + {I_gen}
                if len(members) >= n_balance:  # line 17
                    break  # line 18
    return generated  # lines 19-20: D_final = D_gen + D_origin (the sampler draws D_gen)


def _images_per_present_class(image_classes: ImageClasses) -> np.ndarray:
    """|M[C]| for every class some image contains."""
    return np.array(list(Counter(cls for classes in image_classes.values() for cls in classes).values()), np.int64)


def planned_size(image_classes: ImageClasses, n_balance: int) -> int:
    """|D_gen| for ``n_balance``: the sum over present classes of max(0, n_balance - |M[C]|)."""
    return int(np.maximum(n_balance - _images_per_present_class(image_classes), 0).sum())


def auto_n_balance(image_classes: ImageClasses) -> int:
    """The paper's default (section 3.3): the n_balance whose |D_gen| is closest to |D_origin|.

    |D_origin| counts every image, with or without defects; ties go to the smaller n_balance.
    """
    target = len(image_classes)
    counts = _images_per_present_class(image_classes)
    if counts.size == 0:
        raise DatasetError("no image contains a defect class: there is nothing to balance")
    best, best_gap = 0, target
    for n in range(int(counts.max()) + target + 1):  # |D_gen| >= target by then
        size = int(np.maximum(n - counts, 0).sum())
        if abs(size - target) < best_gap:
            best, best_gap = n, abs(size - target)
        if size >= target:
            break
    return best


def repeats_of(generations: list[tuple[int, str]]) -> list[tuple[str, int]]:
    """(condition stem, repeats) in order of first generation."""
    repeats: dict[str, int] = {}
    for _, stem in generations:
        repeats[stem] = repeats.get(stem, 0) + 1
    return list(repeats.items())


# -- plans --------------------------------------------------------------------------------------------
@dataclass
class BalancePlan:
    """A generation plan and the class counts before and after it (index = class id)."""

    dataset: Path
    split: str | None
    n_balance: int
    plan: list[tuple[str, int]]
    before: np.ndarray
    after: np.ndarray
    class_names: dict[int, str]
    unreachable: list[int] = field(default_factory=list)

    @property
    def generations(self) -> int:
        return sum(k for _, k in self.plan)

    def to_json(self) -> dict[str, Any]:
        """The plan file (see the module docstring)."""
        return plan_json(self.dataset, self.split, self.n_balance, self.plan)

    def distribution(self) -> dict[str, dict]:
        """``{"before": report, "after": report}`` of entropy and CIR (see :func:`distribution_report`)."""
        return {
            "before": distribution_report(self.before, self.class_names),
            "after": distribution_report(self.after, self.class_names),
        }


def _select(dataset: Dataset, split: str | None) -> list[str]:
    return dataset.stems if split is None else dataset.split(split)


def read_image_classes(dataset: Dataset, stems: list[str], progress: bool = False) -> ImageClasses:
    """stem -> defect class ids present, for ``stems`` in their order."""
    described = track(stems, total=len(stems), description=f"classes {dataset.root.name}", enabled=progress)
    return {stem: classes_in(dataset, stem) for stem in described}


def parse_n_balance(n_balance: int | str | None) -> int | str | None:
    """``None``, ``"auto"`` or a non-negative integer (also given as text)."""
    if n_balance is None or n_balance == "auto":
        return n_balance
    text = str(n_balance).strip()
    if text.lower() == "auto":
        return "auto"
    if not text.isdigit():
        raise OptionError(f"--n-balance: expected a non-negative integer or 'auto', got {n_balance!r}")
    return int(text)


@writes_output("balance", "plan_out")
def plan_balance(
    dataset: str | Path,
    n_balance: int | str = "auto",
    plan_out: str | Path | None = None,
    split: str | None = "train",
    progress: bool = False,
    overwrite: bool = False,
) -> BalancePlan:
    """Algorithm 1 of the VOC paper on ``dataset`` (the stems of ``split``; None = every stem).

    n_balance: images per class to reach, or ``"auto"`` (|D_gen| closest to |D_origin|).
    plan_out: where to write the plan JSON (atomically); None writes nothing. An existing file is
    replaced only with ``overwrite`` and only if it is a plan. ``after`` assumes each generation
    contains the classes of its condition image.
    """
    if plan_out is not None:
        check_plan_out(Path(plan_out), overwrite)
    ds = Dataset(dataset)
    n = parse_n_balance(n_balance)
    image_classes = read_image_classes(ds, _select(ds, split), progress)
    if not image_classes:
        raise DatasetError(f"split {split!r} is empty: nothing to balance", ds.root)
    if n is None or n == "auto":
        n = auto_n_balance(image_classes)
    generations = balance_generations(image_classes, n)
    num_classes = ds.manifest.num_classes
    before = count_images(image_classes.values(), num_classes)
    after = before + count_images((image_classes[stem] for _, stem in generations), num_classes)
    unreachable = [c for c in sorted(ds.manifest.class_names) if c > 0 and before[c] == 0]
    plan = BalancePlan(ds.root, split, n, repeats_of(generations), before, after, ds.manifest.class_names, unreachable)
    if unreachable:
        logger.warning(
            "no image of %s contains %s: Algorithm 1 cannot generate them",
            ds.root,
            ", ".join(plan.class_names[c] for c in unreachable),
        )
    if plan_out is not None:
        write_json(plan_out, plan.to_json())
    return plan


# -- merging ------------------------------------------------------------------------------------------
@dataclass
class MergeSummary:
    """What :func:`merge_datasets` wrote; ``before``/``after`` count images per class of the training stems."""

    out: Path
    real_stems: int
    selected: list[str]
    available: int
    n_balance: int | None
    before: np.ndarray
    after: np.ndarray
    class_names: dict[int, str]
    short: dict[int, int] = field(default_factory=dict)  # class -> images still missing to reach n_balance

    def distribution(self) -> dict[str, dict]:
        return {
            "before": distribution_report(self.before, self.class_names),
            "after": distribution_report(self.after, self.class_names),
        }


def select_balanced(
    real_classes: ImageClasses, synthetic_classes: ImageClasses, n_balance: int, num_classes: int
) -> tuple[list[str], dict[int, int]]:
    """Pick synthetic stems that bring the images per class closest to ``n_balance``.

    Counts start from the real images. Each step picks the unused synthetic sample that lowers
    sum_C |n_balance - n_C| the most (+1 for each of its classes still below n_balance, -1 for each
    at or above it); ties go to the sample with the fewest classes (the order of Algorithm 1's
    stage 2), then to pool order. Picking stops when no sample helps. Unlike a plan, the classes of
    every candidate are known, so a pick counts for every class it contains.
    Returns (selected stems in pick order, class -> images still missing to reach n_balance).
    """
    stems = list(synthetic_classes)
    member = np.zeros((len(stems), num_classes), np.int64)
    for row, stem in enumerate(stems):
        member[row, list(synthetic_classes[stem])] = 1
    sizes = member.sum(1)
    counts = count_images(real_classes.values(), num_classes)
    available = np.ones(len(stems), bool)
    selected: list[str] = []
    while available.any():
        sign = np.where(counts < n_balance, 1, -1)
        sign[0] = 0
        gain = np.where(available, member @ sign, np.iinfo(np.int64).min)
        best = gain.max()
        if best <= 0:
            break
        candidates = np.flatnonzero(gain == best)
        pick = int(candidates[np.argmin(sizes[candidates])])  # argmin: the first of equals, pool order
        available[pick] = False
        selected.append(stems[pick])
        counts += member[pick]
    short = {c: int(n_balance - counts[c]) for c in range(1, num_classes) if counts[c] < n_balance}
    return selected, short


def _check_compatible(real: Dataset, synthetic: Dataset) -> None:
    check_same_classes(real, synthetic)
    if real.has_masks != synthetic.has_masks:
        has = lambda ds: "has" if ds.has_masks else "has no"  # noqa: E731
        raise DatasetError(
            f"{real.root} {has(real)} masks/ but {synthetic.root} {has(synthetic)}: they cannot be merged",
            synthetic.root,
        )


def _check_unique(real: Dataset, synthetic: Dataset, stems: list[str]) -> None:
    clashes = sorted(set(real.stems) & set(stems))
    if clashes:
        shown = ", ".join(clashes[:5]) + (f" and {len(clashes) - 5} more" if len(clashes) > 5 else "")
        raise DatasetError(
            f"stems {shown} exist in both {real.root} and {synthetic.root}: merged stems must be unique, "
            "rename one side",
            synthetic.root,
        )


@writes_output("balance", "out")
def merge_datasets(
    real: str | Path,
    synthetic: str | Path,
    out: str | Path,
    n_balance: int | str | None = None,
    split: str | None = "train",
    overwrite: bool = False,
    progress: bool = False,
) -> MergeSummary:
    """Merge ``real`` and ``synthetic`` into the dataset folder ``out`` (written atomically).

    Every real sample and split is kept; the synthetic samples (all of them, or those picked by
    :func:`select_balanced` when ``n_balance`` is given; ``"auto"`` aims at as many synthetic as
    real training images as in :func:`plan_balance`) are added to the ``train`` split and listed
    in a ``synthetic`` split. ``split`` names the real training stems the balance is measured on.
    Cached ``conditions/*.npz`` travel with their samples. Stems must not clash.
    """
    real_ds, syn_ds = Dataset(real), Dataset(synthetic)
    out = Path(out)
    check_output_dir(out, overwrite)
    _check_compatible(real_ds, syn_ds)
    n = parse_n_balance(n_balance)
    train = _select(real_ds, split)
    real_classes = read_image_classes(real_ds, train, progress)
    syn_classes = read_image_classes(syn_ds, syn_ds.stems, progress)
    num_classes = real_ds.manifest.num_classes
    if n == "auto":
        n = auto_n_balance(real_classes)
    selected, short = (
        (list(syn_ds.stems), {}) if n is None else select_balanced(real_classes, syn_classes, n, num_classes)
    )
    _check_unique(real_ds, syn_ds, selected)
    source = _merge_source(real_ds, syn_ds, selected, n, split)
    manifest = Manifest(
        name=f"{real_ds.manifest.name}+{syn_ds.manifest.name}", classes=real_ds.manifest.classes, source=source
    )
    splits = {name: real_ds.split(name) for name in real_ds.split_names}
    splits["train"] = [*splits.get("train", train), *selected]
    splits["synthetic"] = list(selected)
    with DatasetWriter(out, manifest, overwrite=overwrite) as writer:
        for ds, stems in ((real_ds, real_ds.stems), (syn_ds, selected)):
            for stem in track(stems, total=len(stems), description=f"copy {ds.root.name}", enabled=progress):
                writer.add(ds.read(stem))
            copy_conditions(ds.root, stems, writer.tmp)
        writer.commit(splits)
    before = count_images(real_classes.values(), num_classes)
    after = before + count_images((syn_classes[s] for s in selected), num_classes)
    return MergeSummary(
        out, len(real_ds.stems), selected, len(syn_ds.stems), n, before, after, real_ds.manifest.class_names, short
    )


def _merge_source(
    real: Dataset, synthetic: Dataset, selected: list[str], n_balance: int | None, split: str | None
) -> dict[str, Any]:
    """Provenance: both inputs and their own provenance, which stems came from where."""
    syn_source = synthetic.manifest.source
    condition_of = syn_source.get("condition_of")
    source: dict[str, Any] = {
        "merged": {
            "real": str(real.root.resolve()),
            "synthetic": str(synthetic.root.resolve()),
            "n_balance": n_balance,
            "split": split,
            "synthetic_stems": list(selected),
            "real_source": real.manifest.source,
            "synthetic_source": {k: v for k, v in syn_source.items() if k != "condition_of"},
        },
    }
    if isinstance(condition_of, dict):
        source["condition_of"] = {stem: condition_of[stem] for stem in selected if stem in condition_of}
    return source


# -- the command's core ---------------------------------------------------------------------------------
def balance(
    dataset: str | Path,
    n_balance: int | str | None = None,
    plan_out: str | Path | None = None,
    synthetic: str | Path | None = None,
    out: str | Path | None = None,
    split: str | None = "train",
    overwrite: bool = False,
    progress: bool = False,
) -> BalancePlan | MergeSummary:
    """``defectsynth balance``: a generation plan (``plan_out``) or a merged dataset (``synthetic`` + ``out``).

    Plan: :func:`plan_balance` with ``n_balance`` (None = ``"auto"``, the paper's default).
    Merge: :func:`merge_datasets`; ``n_balance`` None merges every synthetic sample.
    """
    planning, merging = plan_out is not None, synthetic is not None or out is not None
    if planning == merging:
        raise OptionError(
            "give either --plan-out PLAN.json (plan generations) or --with SYNTH --out MERGED (merge), not "
            "both or neither"
        )
    if planning:
        return plan_balance(dataset, "auto" if n_balance is None else n_balance, plan_out, split, progress, overwrite)
    if synthetic is None or out is None:
        raise OptionError("merging needs both --with SYNTH and --out MERGED")
    return merge_datasets(dataset, synthetic, out, n_balance, split, overwrite, progress)
