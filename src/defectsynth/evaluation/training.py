"""Training and scoring one cell of the benchmark: one smp network on one mix, one repeat.

The protocol of the thesis (section 7.1.2) and of Macháček et al.'s validation code it reuses:
train for ``epochs`` with Adam (lr 1e-4, divided by 10 halfway, at epoch 25 of 50) and Dice loss
on the training pairs; after every epoch score the validation pairs (20 % of the real train
split) and keep the weights of the epoch with the best validation mIoU (macro-imagewise); then,
with those weights, score the real test split once. The test pairs are never seen before the
weights are chosen.

How long a cell trains is its *budget* (:data:`BUDGETS`, ``TrainConfig.budget``):

- ``epochs``: ``epochs`` passes over the cell's own pairs, validated after each (the thesis);
- ``steps``: ``TrainConfig.steps`` optimiser steps whatever the number of pairs, validated
  ``epochs`` times at evenly spaced steps (a "round" stands for an epoch), so every mix of a grid
  is trained and selected at the same step counts;
- ``converge``: epochs until the validation mIoU has not improved for ``patience`` epochs, at most
  ``epochs``.

The learning rate drops by 10 after half the validation rounds in every budget (``lr_schedule="step"``;
``"constant"`` keeps one rate, the BASD paper's protocol).

``filter --by segmenter`` trains its network with :func:`train_model` (the same protocol, without
a test split). :func:`save_model` / :func:`load_model` (:mod:`defectsynth.formats.segmenter`) are the one format of a
saved network (``evaluate --save-models``, ``filter``'s ``segmenter/``, ``filter --segmenter``).
"""

from __future__ import annotations

import copy
import itertools
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from defectsynth.checks import check_at_least, check_choice
from defectsynth.errors import MissingDependencyError, OptionError
from defectsynth.evaluation.data import Pair, SegmentationPairs
from defectsynth.formats.segmenter import load_model, save_model  # noqa: F401  (load_model: documented here)
from defectsynth.metrics.segmentation import IGNORE_INDEX, get_stats, reduce_stats

log = logging.getLogger(__name__)

LOSSES = ("dice", "ce", "dice+ce")
OPTIMIZERS = {
    "adam": "Adam",
    "adamw": "AdamW",
    "sgd": "SGD",
}  # Adam: Macháček et al. / the thesis; AdamW: the BASD paper; SGD: the VOC paper
SGD_SETTINGS = {"momentum": 0.9, "weight_decay": 5e-4}  # MMSegmentation's standard SGD (the VOC paper, section 4.1.2)
POLY_POWER, POLY_MIN_LR = 0.9, 1e-4  # MMSegmentation's PolyLR: (lr - min) * (1 - step / total) ** 0.9 + min, every step
BUDGETS = ("steps", "converge", "epochs")
# step: /10 after half the validation rounds (Macháček et al.'s code); constant: the BASD paper's one rate;
# poly: MMSegmentation's
LR_SCHEDULES = ("step", "constant", "poly")
UNDER_TRAINED_SHARE = 0.1  # a best validation score within the last 10 % of the steps trained: under-trained


@dataclass(frozen=True)
class TrainConfig:
    """The training options shared by every cell (the CLI options of the same names)."""

    encoder: str = "resnet34"
    encoder_weights: str | None = "imagenet"
    epochs: int = 50
    batch_size: int = 8
    lr: float = 1e-4
    loss: str = "dice"
    augment: str = "none"
    model_kwargs: tuple[tuple[str, Any], ...] = ()
    optimizer: str = "adam"
    budget: str = "epochs"
    steps: int | None = None  # budget "steps": optimiser steps per cell
    patience: int | None = None  # budget "converge": epochs without a better validation mIoU before stopping
    lr_schedule: str = "step"  # LR_SCHEDULES


def build_model(arch: str, num_classes: int, config: TrainConfig, option: str = "--models") -> nn.Module:
    """``smp.create_model(arch, encoder, weights, classes=num_classes, **model_kwargs)`` with clear errors.

    option: the CLI option that chose ``arch`` (``--models`` for evaluate, ``--arch`` for filter).
    """
    import segmentation_models_pytorch as smp

    try:
        return smp.create_model(
            arch,
            encoder_name=config.encoder,
            encoder_weights=config.encoder_weights,
            classes=num_classes,
            **dict(config.model_kwargs),
        )
    except KeyError as err:
        raise OptionError(f"{option} {arch} / --encoder {config.encoder}: {str(err).strip(chr(39))}") from None
    except OSError as err:  # huggingface_hub / urllib: no network and not cached
        raise MissingDependencyError(
            f"--encoder-weights {config.encoder_weights}: the pretrained weights of encoder {config.encoder!r} are "
            "not in the local "
            f"cache and could not be downloaded ({type(err).__name__}); run once with network access or use "
            "--encoder-weights none"
        ) from None
    except (TypeError, ValueError, RuntimeError) as err:
        raise OptionError(f"{option} {arch} --encoder {config.encoder} --model-kwargs: {err}") from None


def build_loss(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Dice (Macháček et al.'s choice), cross-entropy, or their sum; pixels of 255 are ignored."""
    from segmentation_models_pytorch.losses import DiceLoss

    dice = DiceLoss(mode="multiclass", from_logits=True, ignore_index=IGNORE_INDEX)
    ce = nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX)
    if name == "dice":
        return dice
    if name == "ce":
        return ce
    return lambda logits, target: dice(logits, target) + ce(logits, target)


def make_loader(
    pairs: Sequence[Pair],
    batch_size: int,
    train: bool,
    seed: int,
    augment: bool = False,
    binary_class: int | None = None,
):
    data = SegmentationPairs(pairs, augment=augment, binary_class=binary_class)
    generator = torch.Generator().manual_seed(seed)
    # drop_last avoids a last batch of one image, which batch norm (DeepLabV3+'s ASPP pooling) refuses
    drop_last = train and len(data) > batch_size
    return torch.utils.data.DataLoader(
        data, batch_size=batch_size, shuffle=train, drop_last=drop_last, generator=generator
    )


def steps_per_epoch(num_pairs: int, batch_size: int) -> int:
    """The batches one pass of ``make_loader(..., train=True)`` yields (it drops a last partial batch)."""
    return num_pairs // batch_size if num_pairs > batch_size else 1


def validation_steps(config: TrainConfig, num_pairs: int) -> list[int]:
    """The optimiser steps after which a cell on ``num_pairs`` training pairs validates; the last one is
    its step budget (``converge`` may stop before it)."""
    check_choice("--budget", config.budget, BUDGETS)
    if config.budget == "steps":
        if config.steps is None:
            raise OptionError("--budget steps needs a step count (TrainConfig.steps)")
        check_at_least("--steps", config.steps)
        rounds = min(config.epochs, config.steps)
        return [math.ceil(k * config.steps / rounds) for k in range(1, rounds + 1)]
    if config.budget == "converge":
        if config.patience is None:
            raise OptionError(
                "--budget converge needs --patience (epochs without a better validation mIoU before stopping)"
            )
        check_at_least("--patience", config.patience)
    per_epoch = steps_per_epoch(num_pairs, config.batch_size)
    return [per_epoch * k for k in range(1, config.epochs + 1)]


def is_under_trained(best_step: int, steps: int) -> bool:
    """Whether the selected weights come from the last :data:`UNDER_TRAINED_SHARE` of the steps trained."""
    return best_step > (1 - UNDER_TRAINED_SHARE) * steps


def _endless(loader):
    """The batches of ``loader``, pass after pass (each pass reshuffled, as a new epoch would be)."""
    while True:
        yield from loader


def train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn, optimizer, device: torch.device) -> float:
    """One optimiser step on the batch (x, y); returns its loss."""
    x, y = x.to(device), y.to(device)
    optimizer.zero_grad(set_to_none=True)
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.item()


def train_steps(
    model: nn.Module, batches, steps: int, loss_fn, optimizer, device: torch.device, per_step=None
) -> float:
    """``steps`` optimiser steps on the next batches of the iterator ``batches``; returns the mean loss per image.
    per_step: called after every step (a per-step learning-rate schedule)."""
    model.train()
    total, count = 0.0, 0
    for x, y in itertools.islice(batches, steps):
        total += train_step(model, x, y, loss_fn, optimizer, device) * len(x)
        count += len(x)
        if per_step is not None:
            per_step()
    return total / max(count, 1)


def train_epoch(model: nn.Module, loader, loss_fn, optimizer, device: torch.device) -> float:
    """One pass over ``loader``; returns the mean loss."""
    return train_steps(model, iter(loader), len(loader), loss_fn, optimizer, device)


@torch.no_grad()
def predict_stats(model: nn.Module, loader, num_classes: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """tp, fp, fn, tn (N, num_classes) of the argmax predictions over ``loader``."""
    model.eval()
    parts = []
    for x, y in loader:
        pred = model(x.to(device)).argmax(1).cpu()
        parts.append(get_stats(pred, y, num_classes))
    return tuple(torch.cat([p[i] for p in parts]) for i in range(4))


def evaluate_split(
    model: nn.Module,
    pairs: Sequence[Pair],
    split: str,
    num_classes: int,
    config: TrainConfig,
    device,
    binary_class: int | None,
):
    """Confusion counts of ``model`` on ``pairs`` (``split`` names them: "val" or "test")."""
    loader = make_loader(pairs, config.batch_size, train=False, seed=0, binary_class=binary_class)
    return predict_stats(model, loader, num_classes, device)


def make_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    """Adam, AdamW (torch defaults) or SGD with MMSegmentation's momentum and weight decay (:data:`SGD_SETTINGS`)."""
    check_choice("--optimizer", name, OPTIMIZERS)
    return getattr(torch.optim, OPTIMIZERS[name])(params, lr=lr, **(SGD_SETTINGS if name == "sgd" else {}))


def lr_schedulers(optimizer, config: TrainConfig, total_steps: int, rounds: int):
    """(per-round scheduler, per-step callback or None) for ``config.lr_schedule``: ``step`` divides
    the rate by 10 after half the rounds, ``constant`` keeps it, ``poly`` decays it every step to
    :data:`POLY_MIN_LR` (``(lr - min) * (1 - step / total_steps) ** 0.9 + min``, MMSegmentation's PolyLR)."""
    check_choice("--lr-schedule", config.lr_schedule, LR_SCHEDULES)
    gamma = 0.1 if config.lr_schedule == "step" else 1.0  # constant and poly: no per-round change
    per_round = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[max(1, rounds // 2)], gamma=gamma)
    if config.lr_schedule != "poly":
        return per_round, None
    floor = min(POLY_MIN_LR, config.lr) / config.lr
    poly = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: (1 - floor) * max(0.0, 1 - step / total_steps) ** POLY_POWER + floor
    )
    return per_round, poly.step


def train_model(
    arch: str,
    num_classes: int,
    train: Sequence[Pair],
    val: Sequence[Pair],
    config: TrainConfig,
    seed: int,
    device: torch.device | str,
    binary_class: int | None = None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    option: str = "--models",
) -> tuple[nn.Module, dict[str, Any]]:
    """Train on ``train`` within ``config``'s budget and keep the weights of the best ``val`` mIoU.

    Adam, AdamW or SGD (:func:`make_optimizer`) at ``config.lr``, divided by 10 after half the
    validation rounds (``lr_schedule`` ``step``; ``constant`` keeps it, ``poly`` decays it every
    step: :func:`lr_schedulers`); validation
    mIoU is macro-imagewise. A round is an epoch (budgets ``epochs``, ``converge``) or a share
    ``1/epochs`` of the step budget (``steps``). Returns the network (in eval mode, on ``device``,
    the best round's weights loaded) and ``{"best_epoch": best round (0-based), "best_step",
    "best_val_miou", "steps": optimiser steps trained, "epochs": passes over ``train`` (float),
    "under_trained": :func:`is_under_trained`, "history": [{"epoch", "step", "loss", "val_miou", "lr"}]}``.
    option: the CLI option that chose ``arch`` (named in errors).
    """
    check_at_least("--epochs", config.epochs)
    checkpoints = validation_steps(config, len(train))
    classes = 2 if binary_class is not None else num_classes
    torch.manual_seed(seed)
    model = build_model(arch, classes, config, option).to(device)
    optimizer = make_optimizer(config.optimizer, model.parameters(), config.lr)
    scheduler, per_step = lr_schedulers(optimizer, config, checkpoints[-1], len(checkpoints))
    loss_fn = build_loss(config.loss)
    loader = make_loader(
        train, config.batch_size, train=True, seed=seed, augment=config.augment == "classic", binary_class=binary_class
    )
    batches, done = _endless(loader), 0
    best: tuple[float, int, dict[str, torch.Tensor]] | None = None
    history = []
    for round_, until in enumerate(checkpoints):
        lr = optimizer.param_groups[0]["lr"]
        loss = train_steps(model, batches, until - done, loss_fn, optimizer, device, per_step)
        done = until
        scheduler.step()
        val_miou = reduce_stats(*evaluate_split(model, val, "val", classes, config, device, binary_class))["iou"][
            "macro_imagewise"
        ]
        history.append({"epoch": round_, "step": done, "loss": loss, "val_miou": val_miou, "lr": lr})
        if best is None or val_miou > best[0]:
            best = (val_miou, round_, copy.deepcopy(model.state_dict()))
        if on_epoch is not None:
            on_epoch(round_, history[-1])
        if config.budget == "converge" and round_ - best[1] >= config.patience:
            break
    assert best is not None  # epochs >= 1 is checked above
    model.load_state_dict(best[2])
    best_step = checkpoints[best[1]]
    return model.eval(), {
        "best_epoch": best[1],
        "best_step": best_step,
        "best_val_miou": best[0],
        "steps": done,
        "epochs": done / steps_per_epoch(len(train), config.batch_size),
        "under_trained": is_under_trained(best_step, done),
        "history": history,
    }


def run_cell(
    arch: str,
    num_classes: int,
    train: Sequence[Pair],
    val: Sequence[Pair],
    test: Sequence[Pair],
    config: TrainConfig,
    seed: int,
    device: torch.device,
    binary_class: int | None = None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    save_to: Path | None = None,
) -> dict[str, Any]:
    """Train on ``train``, select the epoch on ``val``, score ``test`` once with the selected weights.

    Returns the selection of :func:`train_model` (``best_epoch``, ``best_step``, ``best_val_miou``,
    ``steps``, ``epochs``, ``under_trained``, ``history``) and ``"test_stats": {"tp", "fp", "fn", "tn":
    (N, C) lists}``. Binary cells have C = 2.
    save_to: a folder to save the selected network in (:func:`save_model`).
    """
    model, selection = train_model(arch, num_classes, train, val, config, seed, device, binary_class, on_epoch)
    classes = 2 if binary_class is not None else num_classes
    tp, fp, fn, tn = evaluate_split(model, test, "test", classes, config, device, binary_class)
    if save_to is not None:
        save_model(model, save_to)
    return {**selection, "test_stats": {"tp": tp.tolist(), "fp": fp.tolist(), "fn": fn.tolist(), "tn": tn.tolist()}}


# -- saved networks ------------------------------------------------------------------------------------
