"""``train``: the box-guided joint image + mask diffusion model on Accelerate (BASD paper section 3,
ISDM's checkpoint policy).

The loop is split into small named steps: :func:`prepare_run` (options -> run.json),
:func:`build_data` (encode the dataset once), :func:`build_model`, :class:`EpochOrder` (the data
order), :func:`train_step` and :func:`save_checkpoint`. Every random draw of a step (timesteps,
noise, flips, condition drop) comes from a generator per sample seeded by (seed, step, position in
the global batch), and the data order of an epoch from (seed, epoch), so a resumed run repeats the
uninterrupted one exactly (``--mixed-precision auto`` keeps the precision the run started with) and
N processes with batch B train like one process with batch N*B: in float32 up to the order of
floating-point sums (tested to 1e-4); bf16 autocast rounds batches of other sizes further apart.

Policy (ISDM): ``unet/`` and ``unet_ema/`` are rewritten only when an epoch's mean training loss
improves (and written once at the end if training stopped before its first epoch ended); ``checkpoint-<step>/`` every
``checkpoint_every`` steps and at the end, the last ``checkpoints_total_limit`` kept; ``patience_steps`` stops when the
loss has not improved for that many steps.

Recipe options (defaults measured in docs/recipe-ablation.md): ``prediction`` (epsilon | sample | v),
``mask_loss_weight``, ``min_snr_gamma``, ``self_cond`` (analog-bits self-conditioning: on half of
the batches a first pass without gradient gives an x_0 estimate that the second pass sees),
``lr_warmup_steps`` (linear warm-up) and ``lr_schedule`` (constant | cosine decay to 0 at the last step).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

import defectsynth.diffusion.checkpoint as ckpt
from defectsynth.checks import check_at_least, check_choice
from defectsynth.data import Dataset
from defectsynth.data.files import atomic_write_bytes
from defectsynth.data.resize import format_size, parse_size, resize_sample
from defectsynth.diffusion.conditioning import CHANNELS, EncodedSet, flip
from defectsynth.diffusion.configs import DiffusionTrainConfig
from defectsynth.diffusion.context import CONTEXT_MARGIN, check_context, region_of
from defectsynth.diffusion.loss_curve import LOSS_PNG, LossCurve
from defectsynth.diffusion.losses import (
    PREDICTIONS,
    channel_weights,
    diffusion_loss,
    predicted_x0,
    recipe_prediction,
    scheduler_prediction,
)
from defectsynth.diffusion.models import (
    build_unet,
    channel_layout,
    compile_forward,
    load_network,
    network_config,
    network_input,
    use_float32_attention,
)
from defectsynth.diffusion.processes import PRECISIONS, make_accelerator, resolve_precision
from defectsynth.diffusion.schedules import BETA_END, BETA_START, TRAIN_TIMESTEPS, train_scheduler
from defectsynth.diffusion.trackers import log_preview, trackers_for, tracking
from defectsynth.encoding import CLASS_FILLS
from defectsynth.errors import DefectsynthError, OptionError, TrainingError
from defectsynth.formats.run import previous_run, read_run_json, weights_folder, write_run_json
from defectsynth.hub import resolve_run
from defectsynth.locks import writes_output
from defectsynth.presets import applies_preset
from defectsynth.progress import make_progress, track
from defectsynth.ranks import one_outcome, raise_reported, report
from defectsynth.seeds import derived_seed

logger = logging.getLogger(__name__)

# Options that define the model and its data: a resumed run must use the same values.
FIXED_ON_RESUME = (
    "dataset",
    "cond",
    "target",
    "model",
    "size",
    "batch_size",
    "lr",
    "seed",
    "variance",
    "drop_rate",
    "ema",
    "ema_decay",
    "split",
    "finetune",
    "latent",
    "prediction",
    "self_cond",
    "mask_loss_weight",
    "min_snr_gamma",
    "lr_warmup_steps",
    "lr_schedule",
    "mask_prediction",
    "channels",
    "flip",
    "class_fill",
    "dropout",
    "context",
    "crop",
    "context_margin",
)
LR_SCHEDULES = ("constant", "cosine")
WEIGHTS = ("best", "final")  # unet/: the epoch of the best training loss (ISDM) or the last one
# The plain recipe of the BASD paper's code: what runs written before these options existed used
# (DiffusionTrainConfig's defaults, which a run.json without them is read with).
PLAIN_RECIPE = {f.name: f.default for f in fields(DiffusionTrainConfig) if f.name in (
    "prediction", "mask_prediction", "mask_loss_weight", "min_snr_gamma", "self_cond", "lr_warmup_steps", "lr_schedule",
    "channels", "flip", "class_fill", "dropout", "context", "crop", "context_margin")}  # fmt: skip
# Defaults of the recipe options (None = by mode): the measured recipe for box-guided and
# unconditional runs (docs/recipe-ablation.md: x_0 for every channel; on CrackForest its synthetic
# data trains the segmenter as well as real data, while noise prediction for the image channels,
# `--prediction epsilon` with the mask bits still x_0, keeps the surface texture but gives fainter
# cracks and a worse segmenter), ISDM's (epsilon, no self-conditioning) for --cond mask.
RECIPE_DEFAULTS = {"prediction": "sample", "mask_prediction": "sample", "mask_loss_weight": 4.0, "self_cond": True}
# The image target of a grey-scale run (one image channel) when --prediction is left out: v. On CrackForest
# trained as grey, v for the image and x_0 for the mask bits is the one recipe measured to meet every
# fidelity bar (texture 1.24x real, synthetic-only 0.89x real-only mIoU, real+synthetic level with real,
# EBR 2%; docs/recipe-ablation.md). RGB runs keep x_0: v with colour channels made colour speckle.
GREY_PREDICTION = "v"
ISDM_DEFAULTS = {"prediction": "epsilon", "mask_prediction": None, "mask_loss_weight": 1.0, "self_cond": False}


@dataclass
class TrainerState:
    """Where training stands; saved as ``trainer.json`` in every checkpoint."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    loss_sum: float = 0.0
    loss_count: int = 0
    best_loss: float | None = None
    best_step: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    scaler: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


# -- 1. options and run.json ----------------------------------------------------------------------
def prepare_run(args: DiffusionTrainConfig, accelerator: Accelerator) -> tuple[Path, Dataset, dict[str, Any] | None]:
    """Check options and the output folder; returns (out, dataset, previous run.json or None)."""
    out = Path(args.out)
    for name in ("epochs", "batch_size", "checkpoint_every"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise OptionError(f"--{name.replace('_', '-')}: must be >= 1, got {getattr(args, name)}")
    if args.max_steps is not None and args.max_steps < 1:
        raise OptionError(f"--max-steps: must be >= 1, got {args.max_steps}")
    if not 0.0 <= args.drop_rate < 1.0:
        raise OptionError(f"--drop-rate: must lie in [0, 1), got {args.drop_rate}")
    if args.drop_rate > 0 and args.cond == "none":
        raise OptionError("--drop-rate needs a condition: it cannot be used with --cond none")
    if args.mixed_precision not in PRECISIONS:
        raise OptionError(f"--mixed-precision: expected auto, no, fp16 or bf16, got {args.mixed_precision!r}")
    check_at_least("--lr", args.lr, 0)  # 0 keeps the weights (a finetune that only re-checks its start)
    if not 0.0 < args.ema_decay < 1.0:
        raise OptionError(f"--ema-decay: must lie in (0, 1), got {args.ema_decay}")
    check_recipe(args)
    check_paper_switches(args)
    dataset = Dataset(args.dataset)
    return out, dataset, main_process_decides(accelerator, lambda: check_out_folder(out, args))


def main_process_decides(accelerator: Accelerator, decide):
    """``decide()`` on the main process only, its result (or its DefectsynthError) handed to every
    process. Processes checking the run folder on their own raced the main process writing run.json."""
    if accelerator.num_processes == 1:
        return decide()
    from accelerate.utils import broadcast_object_list

    answer: list[Any] = [None]
    failure = None
    if accelerator.is_main_process:
        try:
            answer[0] = ("ok", decide())
        except Exception as error:  # every process must hear of it (ranks.report)
            answer[0], failure = ("error", report(error, 0)), error
    broadcast_object_list(answer)
    accelerator.wait_for_everyone()
    if answer[0][0] == "error":
        raise_reported(answer[0][1], failure)
    return answer[0][1]


def check_out_folder(out: Path, args: DiffusionTrainConfig) -> dict[str, Any] | None:
    """The previous run.json when resuming, None for a new run; errors for a folder in the way
    (:func:`~defectsynth.formats.run.previous_run`) or for a resume that changes what is fixed."""
    previous = previous_run(out, args.resume)
    if previous is not None:
        check_unchanged_on_resume(previous, args, out / "run.json")
    return previous


def check_unchanged_on_resume(previous: dict[str, Any], args: DiffusionTrainConfig, path: Path) -> None:
    """--resume may not change an option of FIXED_ON_RESUME. Size, split and finetune left out (None)
    mean "as the run was started"; compared as run.json records them: the size as WIDTHxHEIGHT, the
    split as resolved (train when there is one)."""
    before = {
        **DiffusionTrainConfig.from_json(previous["args"], path).to_json(),
        "split": previous["dataset"].get("split"),
    }
    given = {**args.to_json(), "size": args.size and format_size(parse_size(args.size))}
    changed = [
        k
        for k in FIXED_ON_RESUME
        if before.get(k) != given[k]
        and not (k in ("size", "split", "finetune", "latent") and given[k] is None)
        and not (k == "channels" and given[k] == "auto")
        and not (k == "prediction" and given[k] is None)
    ]
    if changed:
        flags = ", ".join(f"--{k.replace('_', '-')} ({before.get(k)!r} -> {given[k]!r})" for k in changed)
        raise OptionError(f"--resume: {flags} differ from the run being resumed")


def check_recipe(args: DiffusionTrainConfig) -> None:
    """The recipe options: prediction, loss weights, self-conditioning, learning-rate schedule."""
    if args.prediction is not None:  # None: chosen by the channel count once the data is read (GREY_PREDICTION)
        check_choice("--prediction", args.prediction, PREDICTIONS)
    if args.mask_prediction is not None:
        check_choice("--mask-prediction", args.mask_prediction, PREDICTIONS)
        if args.latent and args.mask_prediction != args.prediction:
            raise OptionError(
                "--mask-prediction: diffusion on latents (--latent) has no mask channels of its own; use --prediction"
            )
    check_choice("--channels", args.channels, CHANNELS)
    if not args.mask_loss_weight > 0:
        raise OptionError(f"--mask-loss-weight: must be > 0, got {args.mask_loss_weight}")
    if args.min_snr_gamma is not None and not args.min_snr_gamma > 0:
        raise OptionError(f"--min-snr-gamma: must be > 0, got {args.min_snr_gamma}")
    if args.lr_warmup_steps < 0:
        raise OptionError(f"--lr-warmup-steps: must be >= 0, got {args.lr_warmup_steps}")
    check_choice("--lr-schedule", args.lr_schedule, LR_SCHEDULES)


def check_paper_switches(args: DiffusionTrainConfig) -> None:
    """flip, weights, class_fill and dropout (the switches the paper presets need)."""
    check_choice("--weights", args.weights, WEIGHTS)
    check_choice("--class-fill", args.class_fill, CLASS_FILLS)
    if args.class_fill != "inside" and args.cond != "basd":
        raise OptionError(
            f"--class-fill {args.class_fill}: only --cond basd has a C-BASD class map, not --cond {args.cond}"
        )
    if args.class_fill != "inside" and args.context:  # the windows of diffusion/context.py fill inside boxes
        raise OptionError(
            f"--class-fill {args.class_fill} cannot be used with --context: its windows fill the class map "
            "inside the boxes"
        )
    if args.dropout is not None and not 0.0 <= args.dropout < 1.0:
        raise OptionError(f"--dropout: must lie in [0, 1), got {args.dropout}")


def lr_at(step: int, lr: float, warmup_steps: int, schedule: str, total: int) -> float:
    """Learning rate of step ``step`` (0-based): linear warm-up to ``lr`` over ``warmup_steps``
    steps, then constant or cosine decay reaching 0 after step ``total``."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return lr
    done = (step - warmup_steps) / max(1, total - warmup_steps)
    return lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, done)))


def read_samples(dataset: Dataset, split: str | None, size: tuple[int, int] | None, progress: bool):
    """The samples of ``split`` (resized to ``size`` when given)."""
    stems = dataset.select(split)
    if not stems:
        raise OptionError(f"--split {split}: no images in {dataset.root}")
    return [resize_sample(dataset.read(s), size) for s in track(stems, len(stems), "reading", progress)]


def default_split(dataset: Dataset, split: str | None) -> str | None:
    """``split`` if given, else ``train`` when the dataset has one, else every image (None)."""
    if split is not None:
        return split
    return "train" if "train" in dataset.split_names else None


def run_record(
    args: DiffusionTrainConfig,
    dataset: Dataset,
    split: str | None,
    data: EncodedSet,
    config: dict[str, Any],
    layout,
    latent: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What run.json records of this run (:func:`~defectsynth.formats.run.write_run_json` adds the
    format number and the library versions)."""
    return {
        "args": args.to_json(),
        "classes": [c.to_json() for c in dataset.manifest.classes],
        "num_classes": dataset.manifest.num_classes,
        "dataset": {
            "path": str(Path(args.dataset).resolve()),
            "name": dataset.manifest.name,
            "split": split,
            "images": len(data),
        },
        "size": list(getattr(data, "pixel_size", data.size)),
        "layout": layout.__dict__,
        "latent": latent,
        "unet": {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.items()},
        "schedule": {
            "num_train_timesteps": TRAIN_TIMESTEPS,
            "beta_start": BETA_START,
            "beta_end": BETA_END,
            "beta_schedule": "linear",
            "prediction_type": args.prediction,
            "mask_prediction_type": args.mask_prediction or args.prediction,
            "variance": args.variance,
        },
    }


# -- 2. data and model ----------------------------------------------------------------------------
def build_data(dataset: Dataset, args: DiffusionTrainConfig, split: str | None, progress: bool) -> EncodedSet:
    samples = read_samples(
        dataset, split, None if args.crop else parse_size(args.size), progress
    )  # --crop: native resolution
    channels = "rgb" if args.latent else args.channels  # the autoencoder takes RGB
    if args.context:
        from defectsynth.diffusion.context import ContextSet

        return ContextSet(
            samples, args.cond, dataset.manifest.num_classes, channels, args.crop, args.context_margin, args.seed
        )
    return EncodedSet(samples, args.cond, args.target, dataset.manifest.num_classes, channels, args.class_fill)


def build_model(config: dict[str, Any], finetune: str | None) -> torch.nn.Module:
    """A fresh UNet, or one initialised from the EMA (else plain) weights of the run ``finetune``."""
    model = build_unet(config)
    if finetune:
        source = Path(finetune)
        folder = weights_folder(source)
        if not (folder / "config.json").is_file():
            raise OptionError(f"--finetune: {source} has no unet/ weights yet")
        loaded = load_network(folder)
        if type(loaded) is not type(model):
            raise OptionError(
                f"--finetune: {folder} holds a {type(loaded).__name__}, this run needs a "
                f"{type(model).__name__} (same --cond)"
            )
        for key in ("in_channels", "out_channels", "block_out_channels", "sample_size", "label_channels"):
            if key not in config:
                continue
            a, b = _plain(loaded.config[key]), _plain(config[key])
            if a != b:
                raise OptionError(
                    f"--finetune: {folder} has {key}={a}, this run needs {b} (same "
                    "--cond/--target/--model/--size and classes)"
                )
        model.load_state_dict(loaded.state_dict())
    return model


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, (list, tuple)) else value


def make_optimizer(net: torch.nn.Module, lr: float, device: torch.device) -> torch.optim.Optimizer:
    """AdamW, the fused kernel where torch has one for the device (CPU, small model: 7.6 -> 2.6 ms
    an optimizer step, docs/benchmarks.md); the same update as torch's per-tensor loop."""
    fused = device.type in ("cpu", "cuda")
    return torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.0, fused=fused or None)


class EMA:
    """Exponential moving average of the weights, decay min(decay, (1 + step) / (10 + step))."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        ema_params = list(self.model.parameters())
        torch._foreach_lerp_(ema_params, [p.detach() for p in model.parameters()], 1.0 - decay)


class EpochOrder:
    """The batches of one process: a permutation seeded by (seed, epoch), padded by wrapping to a
    multiple of the process count, dealt round-robin, then cut into batches of ``batch_size``."""

    def __init__(self, n: int, batch_size: int, seed: int, rank: int, world: int):
        self.n, self.batch_size, self.seed, self.rank, self.world = n, batch_size, seed, rank, world
        self.per_process = math.ceil(n / world)
        self.steps_per_epoch = math.ceil(self.per_process / batch_size)

    def batches(self, epoch: int) -> list[torch.Tensor]:
        g = torch.Generator().manual_seed(derived_seed(self.seed, epoch, 0xDA7A))
        perm = torch.randperm(self.n, generator=g)
        perm = perm.repeat(math.ceil(self.per_process * self.world / self.n))[: self.per_process * self.world]
        mine = perm[self.rank :: self.world]
        return list(mine.split(self.batch_size))


# -- 3. one step ----------------------------------------------------------------------------------
def self_condition(model, xt, cond, t, use: torch.Tensor, prediction: str, alphas_cumprod) -> torch.Tensor:
    """Self-conditioning input for training: the first pass's x_0 estimate (no gradient) where
    ``use`` (B,) is true, zeros elsewhere (Analog bits, Algorithm 1)."""
    estimate = torch.zeros_like(xt)
    if use.any():
        with torch.no_grad():
            first = model(network_input(xt, estimate, cond), t).sample[:, : xt.shape[1]]
        estimate = torch.where(
            use[:, None, None, None], predicted_x0(prediction, first.float(), xt, t, alphas_cumprod), estimate
        )
    return estimate


@dataclass
class Draws:
    """The random draws of one step, (B, ...) each: flips (B, 2) bool, uniforms for the condition
    drop and self-conditioning (B,), timesteps (B,) int64, noise (B, C, H, W)."""

    flips: torch.Tensor
    drop: torch.Tensor
    use_self_cond: torch.Tensor
    t: torch.Tensor
    noise: torch.Tensor


def step_draws(seed: int, step: int, positions: list[int], shape: tuple[int, ...], timesteps: int, device) -> Draws:
    """Draws from one generator per sample, seeded by (seed, step, position of the sample in the
    global batch), so a sample's flips, timestep and noise do not depend on how the global batch is
    split over processes: N processes with batch B train like one with batch N*B."""
    rows = []
    for position in positions:
        g = torch.Generator(device=device).manual_seed(derived_seed(seed, step, position))
        u = torch.rand(4, generator=g, device=device)  # flip x, flip y, condition drop, self-conditioning
        t = torch.randint(0, timesteps, (1,), generator=g, device=device)
        rows.append((u, t, torch.randn(shape, generator=g, device=device)))
    u, t, noise = (torch.stack(parts) for parts in zip(*rows))
    return Draws(u[:, :2] < 0.5, u[:, 2], u[:, 3] < 0.5, t[:, 0], noise)


def train_step(
    accelerator: Accelerator,
    model,
    optimizer,
    scheduler,
    data: EncodedSet,
    index: torch.Tensor,
    step: int,
    args: DiffusionTrainConfig,
    max_grad_norm: float,
    prediction: str | tuple[str, ...] | None = None,
) -> torch.Tensor:
    """One optimisation step on the batch ``index``; returns the (detached) loss. ``prediction``:
    the per-channel prediction (:func:`recipe_prediction`; None: ``args.prediction`` everywhere)."""
    device = accelerator.device
    b = len(index)
    if args.context:  # windows drawn per (seed, step, item): diffusion/context.py
        x0, cond = data.cut(index, step)
    else:
        x0, cond = data.targets(index), data.conditions(index)
    x0, cond = x0.to(device, non_blocking=True), cond.to(device, non_blocking=True)
    # the j-th sample of process r sits at r + j * processes in the global batch (EpochOrder deals round-robin)
    positions = [accelerator.process_index + j * accelerator.num_processes for j in range(b)]
    draws = step_draws(args.seed, step, positions, tuple(x0.shape[1:]), scheduler.config.num_train_timesteps, device)
    # 1. flips that move images, masks and box maps together (not in latent space)
    if not args.latent and args.flip:
        x0, cond = flip(x0, draws.flips[:, 0], draws.flips[:, 1]), flip(cond, draws.flips[:, 0], draws.flips[:, 1])
    # 2. classifier-free guidance: replace the condition by the null (zero) condition
    if args.drop_rate > 0:
        keep = draws.drop >= args.drop_rate
        cond = cond * keep[:, None, None, None]
    # 3. forward process q(x_t | x_0), DDPM eq. (4)
    t, noise = draws.t, draws.noise
    xt = scheduler.add_noise(x0, noise, t)
    prediction = args.prediction if prediction is None else prediction
    with accelerator.autocast():
        estimate = None
        if args.self_cond:  # 4. self-conditioning on half of the samples
            estimate = self_condition(model, xt, cond, t, draws.use_self_cond, prediction, scheduler.alphas_cumprod)
        output = model(network_input(xt, estimate, cond), t).sample
    weights = channel_weights(x0.shape[1], args.target, args.mask_loss_weight, data.image_channels)
    loss = diffusion_loss(
        output,
        noise,
        x0,
        xt,
        t,
        scheduler.betas,
        scheduler.alphas_cumprod,
        args.variance == "learned",
        prediction,
        weights,
        args.min_snr_gamma,
        region_of(cond) if args.context else None,
    )
    accelerator.backward(loss)
    if accelerator.sync_gradients and max_grad_norm > 0:
        accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach()


# -- 4. saving ------------------------------------------------------------------------------------
@contextmanager
def saving(out: Path, what: str, partial: Path | None = None):
    """A failed write (disk full, no permission) becomes one :class:`TrainingError` line; the
    partial folder goes, and what was saved before stays as it was."""
    try:
        yield
    except OSError as err:
        if partial is not None:
            shutil.rmtree(partial, ignore_errors=True)
        last = ckpt.checkpoint_dirs(out)
        kept = (
            f"{last[-1].name}/ and the weights before it are intact" if last else "the weights saved before are intact"
        )
        raise TrainingError(f"cannot write {what} ({err.strerror or err}); training stopped, {kept}", out) from None


def save_checkpoint(
    accelerator: Accelerator, out: Path, model, ema: EMA | None, optimizer, state: TrainerState, limit: int | None
) -> None:
    """Write ``checkpoint-<step>/`` (every process its RNG state, the main process the rest)."""
    folder = ckpt.partial_dir(out, state.step)
    accelerator.wait_for_everyone()
    alone = accelerator.num_processes == 1
    try:  # a failure on any process stops all; the main process removes the partial folder once all know
        with one_outcome(accelerator), saving(out, f"{ckpt.CHECKPOINT_PREFIX}{state.step}", folder if alone else None):
            ckpt.write_process_state(folder, accelerator.process_index)
    except DefectsynthError:
        if accelerator.is_main_process:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    if accelerator.scaler is not None:
        state.scaler = {k: v for k, v in accelerator.scaler.state_dict().items()}
    with one_outcome(accelerator):
        if accelerator.is_main_process:
            with saving(out, f"{ckpt.CHECKPOINT_PREFIX}{state.step}", folder):
                ckpt.write_main_state(
                    folder, accelerator.unwrap_model(model), ema.model if ema else None, optimizer, state.to_json()
                )
            ckpt.finish_checkpoint(out, state.step, limit)


def save_best(accelerator: Accelerator, out: Path, model, ema: EMA | None) -> None:
    with one_outcome(accelerator):
        if accelerator.is_main_process:
            with saving(out, "unet/"):
                ckpt.save_pretrained_atomic(accelerator.unwrap_model(model), out / "unet")
            if ema is not None:
                with saving(out, "unet_ema/"):
                    ckpt.save_pretrained_atomic(ema.model, out / "unet_ema")


def resume_state(accelerator: Accelerator, out: Path, model, ema: EMA | None, optimizer) -> TrainerState:
    """The state of the newest complete checkpoint (a fresh one without); first tidies what a
    killed run left: partial folders, and log lines past the checkpoint (they will be redone)."""
    if accelerator.is_main_process:
        ckpt.clean_leftovers(out)
    accelerator.wait_for_everyone()
    found = ckpt.checkpoint_dirs(out)
    state = TrainerState()
    if found:
        logger.info("resuming from %s", found[-1])
        raw = ckpt.load_checkpoint(
            found[-1], accelerator.unwrap_model(model), ema.model if ema else None, optimizer, accelerator.process_index
        )
        state = TrainerState(**raw)
    if accelerator.scaler is not None and state.scaler:
        accelerator.scaler.load_state_dict(state.scaler)
    if accelerator.is_main_process:
        trim_log(out / "log.jsonl", state.step)
    return state


def trim_log(log: Path, step: int) -> None:
    """Keep the complete lines of ``log.jsonl`` up to ``step``: a killed run may have logged epochs
    after its last checkpoint (the resumed run logs them again) or half a line."""
    if not log.is_file():
        return
    text = log.read_text(encoding="utf-8", errors="replace")
    kept = []
    for line in text.splitlines(keepends=True):
        try:
            entry = json.loads(line) if line.endswith("\n") else None
        except ValueError:
            entry = None
        if isinstance(entry, dict) and isinstance(entry.get("step"), int) and entry["step"] <= step:
            kept.append(line)
    if "".join(kept) != text:
        atomic_write_bytes(log, "".join(kept).encode("utf-8"))


# -- 5. the loop ----------------------------------------------------------------------------------
# What --finetune takes from the run it starts from when left out (None), else the defaults.
INHERITED = {"cond": "basd", "target": "joint", "model": "small", "size": None}


def finetune_options(finetune: str | Path | None, given: dict[str, Any]) -> dict[str, Any]:
    """cond, target, model and size: the given ones, the left-out ones from the ``run.json`` of
    the run ``finetune`` starts from (else :data:`INHERITED`). A given one that differs from that run
    is refused: the network it builds could not take the run's weights."""
    source = Path(finetune) / "run.json" if finetune else None
    if source is None or not source.is_file():
        return {k: INHERITED[k] if v is None else v for k, v in given.items()}
    recorded = DiffusionTrainConfig.from_json(read_run_json(source)["args"], source).to_json()
    chosen = {k: recorded.get(k, INHERITED[k]) if v is None else v for k, v in given.items()}
    for key, value in given.items():
        mine, theirs = (format_size(parse_size(x)) if key == "size" and x else x for x in (value, recorded.get(key)))
        if value is not None and mine != theirs:
            raise OptionError(
                f"--finetune: {finetune} was trained with --{key} {theirs}, not {mine}: leave --{key} out to "
                "take the run's"
            )
    return chosen


@applies_preset("train")
@writes_output("train", "out")
def train(
    dataset: str | Path,
    *,
    out: str | Path,
    cond: str | None = None,
    target: str | None = None,
    model: str | None = None,
    size: str | None = None,
    epochs: int = 500,
    max_steps: int | None = None,
    batch_size: int = 8,
    lr: float = 1e-4,
    seed: int = 0,
    variance: str | None = None,
    drop_rate: float = 0.0,
    ema: bool = True,
    ema_decay: float = 0.999,
    prediction: str | None = None,
    mask_prediction: str | None = None,
    mask_loss_weight: float | None = None,
    min_snr_gamma: float | None = None,
    self_cond: bool | None = None,
    lr_warmup_steps: int = 0,
    lr_schedule: str = "constant",
    channels: str = "auto",
    mixed_precision: str = "auto",
    compile: bool = False,
    checkpoint_every: int = 500,
    checkpoints_total_limit: int | None = 2,
    patience_steps: int | None = None,
    resume: bool = False,
    finetune: str | Path | None = None,
    split: str | None = None,
    latent: str | Path | None = None,
    context: bool = False,
    crop: int | None = None,
    context_margin: int = CONTEXT_MARGIN,
    max_grad_norm: float = 1.0,
    preview_every: int = 25,
    report_to: str = "none",
    progress: bool = False,
    flip: bool = True,
    weights: str = "best",
    class_fill: str = "inside",
    dropout: float | None = None,
    preset: str | dict[str, Any] | None = None,
) -> Path:
    """Train a box-guided (or unconditional) diffusion model on ``dataset``; returns the run folder.

    cond: basd | boxmask | none. target: joint (RGB + analog-bit mask) | image | mask.
    model: tiny | small | base | paper. size: ``"N"`` or ``"WIDTHxHEIGHT"``; None keeps the dataset's.
    Left out (None), cond, target, model and size come from the ``finetune`` run (else basd, joint,
    small, the dataset's size; :func:`finetune_options`). ``out`` is locked while training
    (:mod:`defectsynth.locks`).
    cond ``mask`` (with target ``image``) trains the SPADE UNet of SDM/ISDM. variance: fixed |
    learned; None = learned (L_hybrid) for cond ``mask``, as ISDM, else fixed. compile: run the
    network's forward through ``torch.compile``. report_to: none | tensorboard | wandb: also log
    loss, lr and previews through Accelerate's trackers (:mod:`defectsynth.diffusion.trackers`).
    context: also condition on the image outside the boxes (dilated by ``context_margin`` px) and
    learn only inside them (:mod:`~defectsynth.diffusion.context`); crop: train on ``crop`` x
    ``crop`` windows at native resolution (with ``context``; not with ``size``).
    The keyword arguments are written to ``run.json`` (paths as strings); ``progress`` is not.
    Paper switches (:func:`check_paper_switches`): ``flip`` (random flips), ``weights`` (``best``
    training loss or ``final`` epoch in ``unet/``), ``class_fill`` (C-BASD ``inside`` boxes or
    ``nearest`` box, Algorithm 1), ``dropout`` (the network's; None = the model size's). ``preset``:
    a paper preset (:mod:`defectsynth.presets`) filling every option not given; recorded as ``args.preset``.
    """
    finetune = resolve_run(finetune, "--finetune") if finetune else None  # a Hub id (owner/name): its cached download
    if crop is not None and not context:
        raise OptionError("--crop needs --context: windows of an image are trained with the image around them")
    given_size = size
    options = finetune_options(finetune, {"cond": cond, "target": target, "model": model, "size": size})
    cond, target, model, size = options["cond"], options["target"], options["model"], options["size"]
    variance = ("learned" if cond == "mask" else "fixed") if variance is None else variance
    mode_defaults = ISDM_DEFAULTS if cond == "mask" else RECIPE_DEFAULTS
    if prediction is None and (cond == "mask" or latent):  # else chosen by the channel count after reading the data
        prediction = mode_defaults["prediction"]
    if mask_prediction is None:  # latents have no mask channels of their own: one prediction for all
        mask_prediction = prediction if latent else mode_defaults["mask_prediction"]
    mask_loss_weight = mode_defaults["mask_loss_weight"] if mask_loss_weight is None else mask_loss_weight
    self_cond = mode_defaults["self_cond"] if self_cond is None else self_cond
    requested_precision, mixed_precision = mixed_precision, resolve_precision(mixed_precision)
    if context:
        check_context(cond, target, crop, context_margin, given_size, latent, drop_rate)
    args = DiffusionTrainConfig(
        dataset=str(Path(dataset).resolve()), out=str(out), cond=cond, target=target, model=model, size=size,
        epochs=epochs, max_steps=max_steps, batch_size=batch_size, lr=lr, seed=seed, variance=variance,
        drop_rate=drop_rate, ema=ema, ema_decay=ema_decay, prediction=prediction, mask_prediction=mask_prediction,
        mask_loss_weight=mask_loss_weight, min_snr_gamma=min_snr_gamma, self_cond=self_cond,
        lr_warmup_steps=lr_warmup_steps, lr_schedule=lr_schedule, channels=channels, mixed_precision=mixed_precision,
        compile=compile, checkpoint_every=checkpoint_every, checkpoints_total_limit=checkpoints_total_limit,
        patience_steps=patience_steps, resume=resume, finetune=str(Path(finetune).resolve()) if finetune else None,
        split=split, latent=str(Path(latent).resolve()) if latent else None, context=context, crop=crop,
        context_margin=context_margin, max_grad_norm=max_grad_norm, preview_every=preview_every, report_to=report_to,
        flip=flip, weights=weights, class_fill=class_fill, dropout=dropout, preset=preset,
    )  # fmt: skip
    if mixed_precision == "fp16" and not torch.cuda.is_available():
        raise OptionError("--mixed-precision fp16 needs a GPU; use bf16 on a CPU")
    log_with = trackers_for(report_to, Path(out))  # a missing tracker package: one line, nothing written
    accelerator = make_accelerator(mixed_precision, log_with)
    out, ds, previous = prepare_run(args, accelerator)
    if previous is not None and requested_precision == "auto":  # a resumed run keeps its precision
        recorded = previous["args"].get("mixed_precision", "no")
        if recorded != mixed_precision and recorded in PRECISIONS:
            args, mixed_precision = args.replace(mixed_precision=recorded), recorded
            accelerator = make_accelerator(mixed_precision, log_with)
    split = default_split(ds, split)
    data = build_data(ds, args, split, progress and accelerator.is_local_main_process)
    args = args.replace(
        size=format_size(data.size), channels="grey" if data.image_channels == 1 else "rgb"
    )  # what auto chose, recorded in run.json
    if prediction is None:  # a resumed run keeps its target; a new one: v for grey-scale runs, else the recipe's x_0
        by_channels = GREY_PREDICTION if data.image_channels == 1 else mode_defaults["prediction"]
        prediction = previous["args"].get("prediction", "epsilon") if previous is not None else by_channels
        args = args.replace(prediction=prediction)
    latent_info = None
    if latent:
        from defectsynth.diffusion.latent import Autoencoder, LatentSet

        autoencoder = Autoencoder.load(latent)
        autoencoder.model.to(accelerator.device)
        latent_info = autoencoder.info(data.size)
        channel_layout(
            cond, target, ds.manifest.num_classes, variance, autoencoder.channels, self_cond
        )  # option errors first
        data = LatentSet(data, autoencoder, progress and accelerator.is_local_main_process)
    layout = channel_layout(
        cond,
        target,
        ds.manifest.num_classes,
        variance,
        latent_info and latent_info["channels"],
        self_cond,
        data.image_channels,
        context,
    )
    config = network_config(cond, model, data.size, layout)
    if dropout is not None:
        config["dropout"] = dropout
    set_seed(seed)  # the initial weights
    net = build_model(config, args.finetune)
    if accelerator.device.type == "cpu" and accelerator.mixed_precision == "bf16":
        use_float32_attention(net)  # bf16 attention backward is slow on CPUs (models.Float32Attention)
    ema_model = EMA(net, ema_decay) if ema else None
    optimizer = make_optimizer(net, lr, accelerator.device)
    scheduler = train_scheduler(variance, scheduler_prediction(recipe_prediction(args.to_json(), layout)))
    # --finetune weights and the resume checkpoint are read before anything is written, so a
    # broken one leaves no new run folder behind and the resumed one as it was
    state = resume_state(accelerator, out, net, ema_model, optimizer) if resume else TrainerState()
    with one_outcome(accelerator), saving(out, "run.json"):
        if accelerator.is_main_process:
            if previous is None:
                out.mkdir(parents=True, exist_ok=True)
                write_run_json(out, run_record(args, ds, split, data, config, layout, latent_info))
            if not (
                out / "model_index.json"
            ).is_file():  # the run folder is a diffusers pipeline (defectsynth.pipeline)
                from defectsynth.pipeline import write_model_index

                write_model_index(out)
            ckpt.save_pretrained_atomic(scheduler, out / "scheduler")  # a kill never leaves half a config
    net, optimizer = accelerator.prepare(net, optimizer)
    if compile:
        compile_forward(accelerator.unwrap_model(net))
    if ema_model is not None:
        ema_model.model.to(accelerator.device)
    order = EpochOrder(len(data), batch_size, seed, accelerator.process_index, accelerator.num_processes)
    total = order.steps_per_epoch * epochs if max_steps is None else min(max_steps, order.steps_per_epoch * epochs)
    loop = Loop(accelerator, out, net, ema_model, optimizer, scheduler, data, order, args, state, total)
    loop.prediction = recipe_prediction(args.to_json(), layout)
    with tracking(accelerator, args.to_json()):
        loop.run(progress and accelerator.is_local_main_process)
    return out


class Loop:
    """The epoch loop around :func:`train_step`: logging, best weights, checkpoints, previews, patience."""

    def __init__(self, accelerator, out, net, ema, optimizer, scheduler, data, order, args, state, total):
        self.accelerator, self.out, self.net, self.ema = accelerator, out, net, ema
        self.optimizer, self.scheduler, self.data, self.order = optimizer, scheduler, data, order
        self.args, self.state, self.total = args, state, total
        self.prediction = args.prediction  # per channel: set by train() (recipe_prediction)
        self.curve = LossCurve(out)  # loss.png, drawn by the main process

    def run(self, progress: bool) -> None:
        bar = make_progress()
        bar.disable = not progress
        with bar:
            task = bar.add_task("training", total=self.total, completed=self.state.step, status="")
            while not self.finished():
                self.run_epoch(bar, task)
        with one_outcome(self.accelerator), saving(self.out, LOSS_PNG):
            if self.accelerator.is_main_process:
                self.curve.finish()
        if (
            not (self.out / "unet").is_dir() or self.args.weights == "final"
        ):  # final weights; or stopped before the first epoch ended
            save_best(self.accelerator, self.out, self.net, self.ema)
        saved = ckpt.checkpoint_dirs(self.out)
        if not saved or saved[-1].name != f"{ckpt.CHECKPOINT_PREFIX}{self.state.step}":
            save_checkpoint(
                self.accelerator,
                self.out,
                self.net,
                self.ema,
                self.optimizer,
                self.state,
                self.args.checkpoints_total_limit,
            )

    def finished(self) -> bool:
        s, a = self.state, self.args
        if s.step >= self.total or s.epoch >= a.epochs:
            return True
        return bool(a.patience_steps) and s.best_loss is not None and s.step - s.best_step >= a.patience_steps

    def run_epoch(self, bar, task) -> None:
        s, a = self.state, self.args
        batches = self.order.batches(s.epoch)
        self.net.train()
        for index in batches[s.batch_in_epoch :]:
            started, cpu_started = time.perf_counter(), time.process_time()
            self.lr = lr_at(s.step, a.lr, a.lr_warmup_steps, a.lr_schedule, self.total)
            for group in self.optimizer.param_groups:
                group["lr"] = self.lr
            loss = train_step(
                self.accelerator,
                self.net,
                self.optimizer,
                self.scheduler,
                self.data,
                index,
                s.step,
                a,
                a.max_grad_norm,
                self.prediction,
            )
            value = float(loss)
            seen = (
                value
                if self.accelerator.num_processes == 1
                else float(self.accelerator.reduce(loss.float().reshape(1), "sum"))
            )
            if not math.isfinite(seen):  # on any process: every process stops at this step, with the same line
                self.stop_non_finite(seen)
            if self.ema is not None:
                self.ema.update(self.accelerator.unwrap_model(self.net), s.step)
            s.step, s.batch_in_epoch = s.step + 1, s.batch_in_epoch + 1
            s.loss_sum, s.loss_count = s.loss_sum + value, s.loss_count + 1
            s.seconds += time.perf_counter() - started
            s.cpu_seconds += time.process_time() - cpu_started
            bar.update(task, completed=s.step, status=f"epoch {s.epoch + 1} loss {value:.4f}")
            self.accelerator.log(
                {"loss": seen / self.accelerator.num_processes, "lr": self.lr}, step=s.step
            )  # trackers (--report-to)
            if s.batch_in_epoch == len(batches):
                self.end_epoch()
            if s.step % a.checkpoint_every == 0:
                save_checkpoint(
                    self.accelerator, self.out, self.net, self.ema, self.optimizer, s, a.checkpoints_total_limit
                )
            if s.step >= self.total:
                return

    def stop_non_finite(self, value: float) -> None:
        """Stop before the broken weights reach the EMA or any file: unet/ and the checkpoints stay."""
        kept = [f"{name}/" for name in ("unet", "unet_ema") if (self.out / name).is_dir()] + [
            f"{p.name}/" for p in ckpt.checkpoint_dirs(self.out)[-1:]
        ]
        where = f"the last good weights are kept in {', '.join(kept)}" if kept else "nothing was saved yet"
        raise TrainingError(
            f"step {self.state.step + 1}: the training loss is {value} (not finite); training stopped, "
            f"{where}; try a lower --lr",
            self.out,
        )

    def end_epoch(self) -> None:
        """Mean loss over the epoch and all processes; best weights, log line, preview."""
        s, a, acc = self.state, self.args, self.accelerator
        mean = acc.reduce(torch.tensor([s.loss_sum / max(1, s.loss_count)], device=acc.device), reduction="mean").item()
        improved = s.best_loss is None or mean < s.best_loss
        if improved:
            s.best_loss, s.best_step = mean, s.step
            if self.args.weights == "best":
                save_best(acc, self.out, self.net, self.ema)
        s.epoch += 1
        s.batch_in_epoch, s.loss_sum, s.loss_count = 0, 0.0, 0
        with one_outcome(acc):  # a failed write (or preview) on the main process stops every process
            if acc.is_main_process:
                line = {
                    "step": s.step,
                    "epoch": s.epoch,
                    "loss": mean,
                    "best": s.best_loss,
                    "improved": improved,
                    "lr": self.lr,
                    "seconds": round(s.seconds, 3),
                    "cpu_seconds": round(s.cpu_seconds, 3),
                }
                with saving(self.out, "log.jsonl"), open(self.out / "log.jsonl", "a", encoding="utf-8") as handle:
                    handle.write(ckpt.dumps(line) + "\n")  # half a line from a kill or a full disk: trimmed on --resume
                acc.log({"epoch_loss": mean}, step=s.step)
                with saving(self.out, LOSS_PNG):
                    self.curve.update()
                if a.preview_every and (s.epoch % a.preview_every == 0) and not a.latent and not a.context:
                    self.preview()

    def preview(self) -> None:
        from defectsynth.diffusion.previews import write_training_preview

        model = self.ema.model if self.ema is not None else self.accelerator.unwrap_model(self.net)
        grid = write_training_preview(
            model, self.data, self.args, self.out / "previews" / f"epoch-{self.state.epoch:05d}.png"
        )
        log_preview(self.accelerator, grid, self.state.step)
