"""The downstream segmentation benchmark: does synthetic data help a segmentation network?

:func:`evaluate` trains smp networks on a grid of real/synthetic mixes (the thesis' #R/#S grid,
section 7.1.2; the ISDM paper's section 4) and scores them on the real test split. Each finished
(model, mix, synthetic source, repeat) cell is stored under ``<out>/cells/`` so a stopped
evaluation resumes; under ``accelerate launch`` the cells are shared out over the processes.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from defectsynth.checks import check_at_least, check_choice, check_positive
from defectsynth.data import Dataset
from defectsynth.data.files import read_json, write_json
from defectsynth.data.resize import format_size, parse_size
from defectsynth.errors import DatasetError, OptionError
from defectsynth.evaluation.data import PairCache
from defectsynth.evaluation.grid import VAL_FRACTION, Cell, Mix, build_cells, holdout, parse_mixes, seeded_order
from defectsynth.evaluation.report import TRAINING_FIELDS, cell_stats, score, write_report
from defectsynth.evaluation.training import (
    BUDGETS,
    LOSSES,
    LR_SCHEDULES,
    OPTIMIZERS,
    UNDER_TRAINED_SHARE,
    TrainConfig,
    run_cell,
    steps_per_epoch,
)
from defectsynth.formats.dataset import check_same_classes
from defectsynth.formats.report import check_report_out, open_report_out
from defectsynth.locks import writes_output
from defectsynth.presets import applies_preset
from defectsynth.progress import progress_bar, track
from defectsynth.ranks import process_state
from defectsynth.seeds import derived_seed

log = logging.getLogger(__name__)

DEFAULT_MODELS = ("unetplusplus", "fpn", "deeplabv3plus")
AUGMENTS = ("none", "classic")
__all__ = ["DEFAULT_MODELS", "evaluate"]


def _check_options(
    models, epochs, batch_size, lr, repeats, augment, loss, optimizer, encoder_weights, budget, steps, patience
) -> None:
    from segmentation_models_pytorch import MODEL_ARCHITECTURES_MAPPING

    if not models:
        raise OptionError("--models: give at least one segmentation_models_pytorch architecture, e.g. unetplusplus,fpn")
    unknown = [m for m in models if m not in MODEL_ARCHITECTURES_MAPPING]
    if unknown:
        raise OptionError(
            f"--models: unknown architecture {', '.join(unknown)}; smp offers {', '.join(MODEL_ARCHITECTURES_MAPPING)}"
        )
    for name, value in (("--epochs", epochs), ("--batch-size", batch_size), ("--repeats", repeats)):
        check_at_least(name, value)
    check_positive("--lr", lr)
    check_choice("--augment", augment, AUGMENTS)
    check_choice("--optimizer", optimizer, OPTIMIZERS)
    check_choice("--loss", loss, LOSSES)
    check_choice("--budget", budget, BUDGETS)
    check_at_least("--patience", patience)
    if steps is not None:
        check_at_least("--steps", steps)
        if budget != "steps":
            raise OptionError(
                f"--steps {steps} sets the step budget of --budget steps; with --budget {budget} leave it out"
            )
    if encoder_weights not in (None, "none", "imagenet") and not str(encoder_weights).strip():
        raise OptionError(f"--encoder-weights must be imagenet, none or an smp weight name, got {encoder_weights!r}")


def _open_synthetic(paths: Sequence[str | Path], real: Dataset) -> dict[str, Dataset]:
    """Synthetic datasets by a unique name (their folder name), checked to share the real classes."""
    sources: dict[str, Dataset] = {}
    for path in paths:
        ds = Dataset(path)
        if not ds.has_masks:
            raise DatasetError("--synthetic: the benchmark needs masks, but this dataset has no masks/ folder", ds.root)
        check_same_classes(ds, real, "--synthetic")
        if not ds.stems:
            raise DatasetError("--synthetic: the dataset holds no images", ds.root)
        name, k = ds.root.name, 2
        while name in sources:
            name, k = f"{ds.root.name}-{k}", k + 1
        sources[name] = ds
    return sources


def _cell_seed(seed: int, cell: Cell) -> int:
    """The same initial weights and batch order for every mix of one (model, repeat): fairer comparisons."""
    return derived_seed(seed, cell.repeat, zlib.crc32(cell.model.encode()), cell.binary_class or 0, bits=31)


def _training_stems(
    cell: Cell, counts, real_order: list[str], synth_order: dict[str, list[str]]
) -> tuple[list[str], list[str]]:
    """The real and synthetic stems a cell trains on: prefixes of the seeded orders (nested subsets)."""
    n_real, n_synth = counts[(cell.mix, cell.synthetic)]
    return real_order[:n_real], (synth_order[cell.synthetic][:n_synth] if cell.synthetic is not None else [])


def _data_digest(real_stems: Sequence[str], synth_path: str | None, synth_stems: Sequence[str]) -> str:
    """A short fingerprint of a cell's training data, so a resumed cell is redone when its data changed."""
    text = "\n".join([*real_stems, "--", str(synth_path), *synth_stems])
    return f"{zlib.crc32(text.encode('utf-8')):08x}"


def _model_dir(out: Path, cell: Cell) -> Path:
    """Where ``--save-models`` puts the selected network of ``cell`` (formats.segmenter.save_model)."""
    return out / "models" / cell.key


def _load_done(
    out: Path, cells: Sequence[Cell], digests: dict[str, str], save_models: bool = False
) -> dict[str, dict[str, Any]]:
    """Stored results of finished cells whose training data is unchanged (and, with ``save_models``, whose network is
    saved)."""
    done = {}
    for cell in cells:
        path = out / "cells" / f"{cell.key}.json"
        if path.is_file() and (not save_models or (_model_dir(out, cell) / "model.safetensors").is_file()):
            record = read_json(path)
            if record.get("data_digest") == digests[cell.key]:
                done[cell.key] = record
    return done


def _plan(
    real_ds: Dataset,
    sources: dict[str, Dataset],
    mixes: Sequence[Mix],
    seed: int,
    splits: tuple[str, str] = ("train", "test"),
):
    """(train, val, test stems, seeded real order, seeded synthetic orders, {(mix, source): (#R, #S)});
    ``splits``: the names of the real training and test splits."""
    train_real, val = holdout(real_ds.split(splits[0]), VAL_FRACTION, seed)
    test = real_ds.split(splits[1])
    if set(test) & (set(train_real) | set(val)):
        raise DatasetError(
            f"the {splits[1]} split shares images with the {splits[0]} split",
            real_ds.root / "splits" / f"{splits[1]}.txt",
        )
    real_order = seeded_order(train_real, seed, "real")
    synth_order = {name: seeded_order(ds.stems, seed, f"synthetic:{name}") for name, ds in sources.items()}
    counts = {
        (m, s): m.counts(len(train_real), len(synth_order[s]) if s else 0)
        for m in mixes
        for s in ([None] if m.is_baseline else sources)
    }
    return train_real, val, test, real_order, synth_order, counts


def _config(
    real, train: TrainConfig, size_hw, seed, per_class_binary, sources, models, mixes, repeats, splits
) -> dict[str, Any]:
    """config.json: the ``protocol`` (options that change a cell's result; resuming needs it equal) and the grid."""
    protocol = {
        "real": str(Path(real).resolve()),
        "encoder": train.encoder,
        "encoder_weights": train.encoder_weights,
        "budget": train.budget,
        "steps": train.steps,
        "patience": train.patience,
        "epochs": train.epochs,
        "batch_size": train.batch_size,
        "size": format_size(size_hw),
        "lr": train.lr,
        "seed": seed,
        "per_class_binary": per_class_binary,
        "augment": train.augment,
        "loss": train.loss,
        "optimizer": train.optimizer,
        "lr_schedule": train.lr_schedule,
        "model_kwargs": dict(train.model_kwargs),
        "val_fraction": VAL_FRACTION,
    }
    return {
        "protocol": protocol,
        "real": str(real),
        "synthetic": {n: str(ds.root.resolve()) for n, ds in sources.items()},
        "models": list(models),
        "mix": [m.text for m in mixes],
        "repeats": repeats,
        "splits": dict(zip(("train", "val", "test"), map(len, splits))),
    }


def check_train_size(size: str | None, model_kwargs: dict[str, Any] | None = None) -> tuple[int, int]:
    """``--size`` as (height, width), refused unless the smp networks can take it (sides divisible by
    2^encoder_depth)."""
    size_hw = parse_size(size)
    if size_hw is None:
        raise OptionError("--size: give the training size, e.g. 256 or 352x128")
    stride = 2 ** int((model_kwargs or {}).get("encoder_depth", 5))
    if size_hw[0] % stride or size_hw[1] % stride:
        raise OptionError(
            f"--size {format_size(size_hw)}: smp networks need a width and height divisible by {stride} "
            "(2^encoder_depth)"
        )
    return size_hw


@applies_preset("evaluate")
@writes_output("evaluate", "out")
def evaluate(
    real: str | Path,
    out: str | Path,
    synthetic: Sequence[str | Path] = (),
    models: Sequence[str] = DEFAULT_MODELS,
    encoder: str = "resnet34",
    encoder_weights: str | None = "imagenet",
    epochs: int = 50,
    budget: str = "steps",
    steps: int | None = None,
    patience: int = 5,
    batch_size: int = 8,
    size: str | int = "256",
    lr: float = 1e-4,
    repeats: int = 3,
    seed: int = 0,
    mix: Sequence[str] | None = None,
    per_class_binary: bool = False,
    augment: str = "none",
    loss: str = "dice",
    optimizer: str = "adam",
    model_kwargs: dict[str, Any] | None = None,
    save_models: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    train_split: str = "train",
    test_split: str = "test",
    lr_schedule: str = "step",
    preset: str | dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """Train every (model, mix, synthetic source, repeat) cell and write the report folder ``out``.

    real: dataset folder with ``train`` and ``test`` splits and masks; 20 % of ``train`` (seeded)
    is held out for choosing the best epoch, ``test`` is scored once per cell. synthetic: dataset
    folders with the same classes (all their images are candidates). budget: how long each cell
    trains (:mod:`defectsynth.evaluation.training`): ``steps`` (default) gives every mix ``steps``
    optimiser steps, by default ``epochs`` x the steps of one epoch of the real-only mix (all real
    training pairs), validated ``epochs`` times; ``converge`` stops a cell once its validation mIoU
    has not improved for ``patience`` epochs (at most ``epochs``); ``epochs`` trains every mix for
    ``epochs`` passes over its own pairs (the thesis). mix: thesis notation, e.g.
    ``["R=all,S=0", "R=all,S=100"]`` (default: the baseline and the thesis' seven). model_kwargs:
    extra ``smp.create_model`` arguments (e.g. ``{"encoder_depth": 3}``). Returns the report dict
    (see :mod:`defectsynth.evaluation.report`) on the main process, None on the others.
    train_split / test_split: the real splits trained on (less its held-out 20 %) and scored (the
    BASD paper trains on its 20 % split, ``val`` of ``prepare wood``). lr_schedule: ``step`` (/10
    after half the rounds) or ``constant``. preset: a paper preset (:mod:`defectsynth.presets`),
    recorded as ``config.preset`` in config.json and report.json.
    """
    weights = None if encoder_weights in (None, "none") else encoder_weights
    models = [m.strip().lower() for m in models if m.strip()]
    _check_options(
        models, epochs, batch_size, lr, repeats, augment, loss, optimizer, encoder_weights, budget, steps, patience
    )
    check_choice("--lr-schedule", lr_schedule, LR_SCHEDULES)
    if train_split == test_split:
        raise OptionError(f"--train-split and --test-split are both {train_split!r}: the test split must be unseen")
    size_hw = check_train_size(size, model_kwargs)
    mixes = parse_mixes(mix)
    real_ds = Dataset(real)
    if not real_ds.has_masks:
        raise DatasetError("--real: the benchmark needs masks, but this dataset has no masks/ folder", real_ds.root)
    sources = _open_synthetic(synthetic, real_ds)
    if not sources and any(not m.is_baseline for m in mixes):
        raise OptionError(
            "--synthetic: the mixes "
            + ", ".join(m.text for m in mixes if not m.is_baseline)
            + " need a synthetic dataset"
        )

    # 1. the real splits (train minus the held-out validation part; the untouched test split) and the nested subsets
    train_real, val, test, real_order, synth_order, counts = _plan(
        real_ds, sources, mixes, seed, (train_split, test_split)
    )

    if (
        budget == "steps" and steps is None
    ):  # the real-only mix's epochs: a mix with twice the pairs gets half the epochs
        steps = epochs * steps_per_epoch(len(train_real), batch_size)
    config_kw = TrainConfig(
        encoder,
        weights,
        epochs,
        batch_size,
        lr,
        loss,
        augment,
        tuple(sorted((model_kwargs or {}).items())),
        optimizer,
        budget=budget,
        steps=steps,
        patience=patience if budget == "converge" else None,
        lr_schedule=lr_schedule,
    )
    config = _config(
        real, config_kw, size_hw, seed, per_class_binary, sources, models, mixes, repeats, (train_real, val, test)
    )
    config["protocol"].update(train_split=train_split, test_split=test_split)
    if preset is not None:
        config["preset"] = preset
    out = Path(out)
    state = process_state()
    cache = PairCache(size_hw)
    _read_all(
        cache,
        real_ds,
        [*train_real, *val, *test],
        sources,
        synth_order,
        counts,
        progress and state.is_local_main_process,
    )
    clear = check_report_out(out, config, overwrite)  # every process checks before anything is written
    state.wait_for_everyone()
    if state.is_main_process:
        open_report_out(out, config, clear)
    state.wait_for_everyone()

    # 2. the cells still to train, shared out over the processes
    classes = real_ds.manifest.num_classes
    binary_classes = sorted(real_ds.manifest.class_ids - {0}) if per_class_binary else None
    cells = build_cells(models, mixes, list(sources), repeats, binary_classes)
    synthetic_paths = {"": None, **config["synthetic"]}
    stems = {c.key: _training_stems(c, counts, real_order, synth_order) for c in cells}
    digests = {c.key: _data_digest(stems[c.key][0], synthetic_paths[c.synthetic or ""], stems[c.key][1]) for c in cells}
    done = _load_done(out, cells, digests, save_models)
    todo = [c for c in cells if c.key not in done][state.process_index :: state.num_processes]
    log.info("%d cells, %d finished, %d to train on process %d", len(cells), len(done), len(todo), state.process_index)

    _train_cells(
        todo,
        stems,
        digests,
        real_ds,
        sources,
        val,
        test,
        cache,
        classes,
        config_kw,
        seed,
        state,
        out,
        synthetic_paths,
        progress,
        save_models,
    )
    state.wait_for_everyone()
    if not state.is_main_process:
        return None

    # 3. score every cell from its stored test counts and write the report
    done = _load_done(out, cells, digests)
    names = [real_ds.manifest.class_names.get(c, f"class{c}") for c in range(classes)]
    return write_report(out, config, _scored(cells, done, classes), names)


def _read_all(
    cache: PairCache,
    real_ds: Dataset,
    real_stems: Sequence[str],
    sources: dict[str, Dataset],
    synth_order,
    counts,
    progress: bool,
) -> None:
    """Read every pair the grid trains or tests on into ``cache`` before anything is written, so a
    broken image or mask fails the command at once and leaves no report folder behind."""
    needed = [(real_ds, stem) for stem in real_stems]
    for name, ds in sources.items():
        most = max((n_synth for (_, source), (_, n_synth) in counts.items() if source == name), default=0)
        needed += [(ds, stem) for stem in synth_order[name][:most]]
    for ds, stem in track(needed, len(needed), "reading", progress):
        cache.get(ds, stem)


def _train_cells(
    todo,
    stems,
    digests,
    real_ds,
    sources,
    val,
    test,
    cache,
    classes,
    config_kw,
    seed,
    state,
    out,
    synthetic_paths,
    progress,
    save_models,
) -> None:
    """Train this process's share of the cells (their pairs read into ``cache``); each finished cell is written to
    ``out/cells/<key>.json`` (and, with ``save_models``, its network to ``out/models/<key>/``)."""
    val_pairs, test_pairs = cache.pairs(real_ds, val), cache.pairs(real_ds, test)
    with progress_bar(progress and state.is_local_main_process, len(todo), "evaluate") as (update, advance):
        for cell in todo:
            real_stems, synth_stems = stems[cell.key]
            train_pairs = cache.pairs(real_ds, real_stems)
            if cell.synthetic is not None:
                train_pairs += cache.pairs(sources[cell.synthetic], synth_stems)

            def on_epoch(epoch: int, entry: dict[str, float], cell: Cell = cell) -> None:
                update(
                    status=(
                        f"{cell.key} round {epoch + 1}/{config_kw.epochs} step {entry['step']} val mIoU "
                        f"{entry['val_miou']:.3f}"
                    )
                )

            save_to = _model_dir(out, cell) if save_models else None
            result = run_cell(
                cell.model,
                classes,
                train_pairs,
                val_pairs,
                test_pairs,
                config_kw,
                _cell_seed(seed, cell),
                state.device,
                cell.binary_class,
                on_epoch,
                save_to,
            )
            record = {
                "key": cell.key,
                "model": cell.model,
                "mix": cell.mix.text,
                "synthetic": cell.synthetic,
                "synthetic_path": synthetic_paths[cell.synthetic or ""],
                "repeat": cell.repeat,
                "binary_class": cell.binary_class,
                "n_real": len(real_stems),
                "n_synthetic": len(synth_stems),
                "data_digest": digests[cell.key],
                "process": state.process_index,
                **result,
            }
            write_json(out / "cells" / f"{cell.key}.json", record)
            if result["under_trained"]:
                log.warning(
                    "%s: the best validation mIoU came at step %d of %d (the last %d%%): under-trained, give "
                    "it more --epochs or --steps",
                    cell.key,
                    result["best_step"],
                    result["steps"],
                    round(100 * UNDER_TRAINED_SHARE),
                )
            advance()


def _scored(cells: Sequence[Cell], done: dict[str, dict[str, Any]], num_classes: int) -> list[dict[str, Any]]:
    """Cell records with ``scores``; the networks of a per-class-binary group are scored together."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for cell in cells:
        groups.setdefault((cell.model, cell.mix, cell.synthetic, cell.repeat), []).append(done[cell.key])
    scored = []
    for (model, mix, synthetic, repeat), records in groups.items():
        binary = records[0]["binary_class"] is not None
        first = records[0]
        scored.append(
            {
                "model": model,
                "mix": mix.text,
                "synthetic": synthetic,
                "repeat": repeat,
                "n_real": first["n_real"],
                "n_synthetic": first["n_synthetic"],
                **{k: [r[k] for r in records] if binary else first[k] for k in ("binary_class", *TRAINING_FIELDS)},
                "scores": score(cell_stats(records, num_classes), binary),
            }
        )
    return scored
