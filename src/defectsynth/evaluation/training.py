"""Training and scoring one cell of the benchmark: one smp network on one mix, one repeat.

The protocol of the thesis (section 7.1.2) and of Macháček et al.'s validation code it reuses:
train for ``epochs`` with Adam (lr 1e-4, divided by 10 halfway, at epoch 25 of 50) and Dice loss
on the training pairs; after every epoch score the validation pairs (20 % of the real train
split) and keep the weights of the epoch with the best validation mIoU (macro-imagewise); then,
with those weights, score the real test split once. The test pairs are never seen before the
weights are chosen.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from defectsynth.errors import MissingDependencyError, OptionError
from defectsynth.evaluation.data import Pair, SegmentationPairs
from defectsynth.metrics.segmentation import IGNORE_INDEX, get_stats, reduce_stats

log = logging.getLogger(__name__)

LOSSES = ("dice", "ce", "dice+ce")
OPTIMIZERS = {"adam": "Adam", "adamw": "AdamW"}  # Adam: Macháček et al. / the thesis; AdamW: the BASD paper


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


def build_model(arch: str, num_classes: int, config: TrainConfig) -> nn.Module:
    """``smp.create_model(arch, encoder, weights, classes=num_classes, **model_kwargs)`` with clear errors."""
    import segmentation_models_pytorch as smp

    try:
        return smp.create_model(arch, encoder_name=config.encoder, encoder_weights=config.encoder_weights, classes=num_classes, **dict(config.model_kwargs))
    except KeyError as err:
        raise OptionError(f"--models {arch} / --encoder {config.encoder}: {str(err).strip(chr(39))}") from None
    except OSError as err:  # huggingface_hub / urllib: no network and not cached
        raise MissingDependencyError(
            f"--encoder-weights {config.encoder_weights}: the pretrained weights of encoder {config.encoder!r} are not in the local "
            f"cache and could not be downloaded ({type(err).__name__}); run once with network access or use --encoder-weights none"
        ) from None
    except (TypeError, ValueError, RuntimeError) as err:
        raise OptionError(f"--models {arch} --encoder {config.encoder} --model-kwargs: {err}") from None


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


def make_loader(pairs: Sequence[Pair], batch_size: int, train: bool, seed: int, augment: bool = False, binary_class: int | None = None):
    data = SegmentationPairs(pairs, augment=augment, binary_class=binary_class)
    generator = torch.Generator().manual_seed(seed)
    # drop_last avoids a last batch of one image, which batch norm (DeepLabV3+'s ASPP pooling) refuses
    drop_last = train and len(data) > batch_size
    return torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=train, drop_last=drop_last, generator=generator)


def train_epoch(model: nn.Module, loader, loss_fn, optimizer, device: torch.device) -> float:
    """One pass over ``loader``; returns the mean loss."""
    model.train()
    total, count = 0.0, 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(x)
        count += len(x)
    return total / max(count, 1)


@torch.no_grad()
def predict_stats(model: nn.Module, loader, num_classes: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """tp, fp, fn, tn (N, num_classes) of the argmax predictions over ``loader``."""
    model.eval()
    parts = []
    for x, y in loader:
        pred = model(x.to(device)).argmax(1).cpu()
        parts.append(get_stats(pred, y, num_classes))
    return tuple(torch.cat([p[i] for p in parts]) for i in range(4))


def evaluate_split(model: nn.Module, pairs: Sequence[Pair], split: str, num_classes: int, config: TrainConfig, device, binary_class: int | None):
    """Confusion counts of ``model`` on ``pairs`` (``split`` names them: "val" or "test")."""
    loader = make_loader(pairs, config.batch_size, train=False, seed=0, binary_class=binary_class)
    return predict_stats(model, loader, num_classes, device)


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
) -> dict[str, Any]:
    """Train on ``train``, select the epoch on ``val``, score ``test`` once with the selected weights.

    Returns ``{"best_epoch", "best_val_miou", "history": [{"epoch", "loss", "val_miou", "lr"}],
    "test_stats": {"tp", "fp", "fn", "tn": (N, C) lists}}``. Binary cells have C = 2.
    """
    classes = 2 if binary_class is not None else num_classes
    torch.manual_seed(seed)
    model = build_model(arch, classes, config).to(device)
    optimizer = getattr(torch.optim, OPTIMIZERS[config.optimizer])(model.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[max(1, config.epochs // 2)], gamma=0.1)
    loss_fn = build_loss(config.loss)
    loader = make_loader(train, config.batch_size, train=True, seed=seed, augment=config.augment == "classic", binary_class=binary_class)
    best: tuple[float, int, dict[str, torch.Tensor]] | None = None
    history = []
    for epoch in range(config.epochs):
        lr = optimizer.param_groups[0]["lr"]
        loss = train_epoch(model, loader, loss_fn, optimizer, device)
        scheduler.step()
        val_miou = reduce_stats(*evaluate_split(model, val, "val", classes, config, device, binary_class))["iou"]["macro_imagewise"]
        history.append({"epoch": epoch, "loss": loss, "val_miou": val_miou, "lr": lr})
        if best is None or val_miou > best[0]:
            best = (val_miou, epoch, copy.deepcopy(model.state_dict()))
        if on_epoch is not None:
            on_epoch(epoch, history[-1])
    assert best is not None  # epochs >= 1 is checked by evaluate()
    model.load_state_dict(best[2])
    tp, fp, fn, tn = evaluate_split(model, test, "test", classes, config, device, binary_class)
    return {
        "best_epoch": best[1],
        "best_val_miou": best[0],
        "history": history,
        "test_stats": {"tp": tp.tolist(), "fp": fp.tolist(), "fn": fn.tolist(), "tn": tn.tolist()},
    }
