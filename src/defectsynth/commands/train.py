"""``defectsynth train DATASET``: train a box-guided joint image + mask diffusion model."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from defectsynth.commands._config import ConfigOpt
from defectsynth.commands._options import ProgressOpt, ReportTo, ReportToOpt, SeedOpt, SizeOpt, SplitNameOpt
from defectsynth.commands._presets import PresetOpt, chosen_preset
from defectsynth.commands._summary import console
from defectsynth.commands.encode_boxes import ClassFill

EXAMPLES = """
[bold]Examples[/]

  defectsynth train data/toy --cond basd --target joint --model small --out runs/toy-basd

  defectsynth train data/wood --size 352x128 --model paper --lr 1e-5 --batch-size 8 --epochs 300 --out runs/wood

  defectsynth train data/toy --cond none --target mask --out runs/toy-masks   [dim](All-Latent's mask generator)[/]

  defectsynth train data/toy --cond mask --target image --out runs/toy-isdm   [dim](SDM/ISDM: SPADE UNet, L_hybrid)[/]

  defectsynth train data/toy --finetune runs/toy-isdm --drop-rate 0.2 --out runs/toy-isdm-ft   [dim](--cond/--target/--model/--size: the run's)[/]

  defectsynth train data/wood --finetune my-org/defectsynth-wood --epochs 50 --out runs/wood-ft   [dim](a run pushed with `defectsynth push`)[/]

  defectsynth train data/toy --cond none --target mask --latent models/vae --out runs/toy-masks-latent   [dim](latent All-Latent)[/]

  defectsynth train data/toy --out runs/toy-basd --resume   [dim](continue from the last checkpoint)[/]

  defectsynth train data/toy --mask-prediction epsilon --mask-loss-weight 1 --no-self-cond --out runs/plain   [dim](the BASD paper's recipe)[/]

  accelerate launch -m defectsynth train data/wood --model paper --out runs/wood   [dim](several GPUs)[/]

  defectsynth train data/toy --out runs/toy --report-to tensorboard   [dim](then: tensorboard --logdir runs/)[/]

  defectsynth train --config train.toml --out runs/toy-2   [dim](options from a TOML/YAML file; the command line wins)[/]

  defectsynth train --config runs/toy/run.json --out runs/toy-again   [dim](a run's arguments, replayed)[/]

  defectsynth train data/wood --preset basd-paper --out runs/wood-paper   [dim](the BASD paper's settings, docs/presets/basd-paper.md)[/]

  defectsynth train data/lemons --preset isdm-paper --epochs 2000 --out runs/isdm   [dim](explicit options win over the preset)[/]

  defectsynth train data/wood --cond basd --class-fill nearest --no-flip --weights final --no-ema --out runs/wood-alg1

  defectsynth train data/toy --cond mask --target image --model paper --size 256 --dropout 0 --out runs/toy-sdm   [dim](ISDM's code: no dropout)[/]

  defectsynth train data/cracks --context --crop 64 --out runs/cracks-context   [dim](inpainting into real images: sample --onto)[/]

Writes run.json, log.jsonl and loss.png (the loss curve) in the run folder. Docs: docs/train.md
"""  # noqa: E501


class Cond(str, Enum):
    basd = "basd"
    boxmask = "boxmask"
    none = "none"
    mask = "mask"


class Target(str, Enum):
    joint = "joint"
    image = "image"
    mask = "mask"


class ModelSize(str, Enum):
    tiny = "tiny"
    small = "small"
    base = "base"
    paper = "paper"


class Variance(str, Enum):
    fixed = "fixed"
    learned = "learned"


class Prediction(str, Enum):
    epsilon = "epsilon"
    sample = "sample"
    v = "v"


class Channels(str, Enum):
    auto = "auto"
    rgb = "rgb"
    grey = "grey"


class LrSchedule(str, Enum):
    constant = "constant"
    cosine = "cosine"


class Weights(str, Enum):
    best = "best"
    final = "final"


class Precision(str, Enum):
    auto = "auto"
    no = "no"
    fp16 = "fp16"
    bf16 = "bf16"


def train_command(
    dataset: Annotated[Path, typer.Argument(help="Dataset folder to train on.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Run folder (refused if it holds another run, unless --resume).")
    ],
    cond: Annotated[
        Optional[Cond],
        typer.Option(
            "--cond",
            help=(
                "Condition: BASD + C-BASD maps, plain box masks, none, or the mask (SPADE UNet of SDM/ISDM, "
                "with --target image). Default: basd; with --finetune the run's."
            ),
            show_default=False,
        ),
    ] = None,
    target: Annotated[
        Optional[Target],
        typer.Option(
            "--target",
            help=(
                "What the network generates: RGB + analog-bit mask, RGB only, or the mask only. Default: "
                "joint; with --finetune the run's."
            ),
            show_default=False,
        ),
    ] = None,
    model: Annotated[
        Optional[ModelSize],
        typer.Option(
            "--model",
            help=(
                "UNet size; paper = the BASD paper's 114M-parameter network. Default: small; with --finetune the run's."
            ),
            show_default=False,
        ),
    ] = None,
    size: SizeOpt = None,
    epochs: Annotated[int, typer.Option("--epochs", help="Number of epochs.")] = 500,
    max_steps: Annotated[
        Optional[int], typer.Option("--max-steps", help="Stop after this many optimisation steps.")
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images per step and process.")] = 8,
    lr: Annotated[float, typer.Option("--lr", help="AdamW learning rate (the paper's 1e-5 suits ~14k images).")] = 1e-4,
    seed: SeedOpt = 0,
    variance: Annotated[
        Optional[Variance],
        typer.Option(
            "--variance",
            help="fixed (L_simple) or learned (L_hybrid, as ISDM). Default: learned for --cond mask, else fixed.",
            show_default=False,
        ),
    ] = None,
    drop_rate: Annotated[
        float, typer.Option("--drop-rate", help="Probability of the null condition, for classifier-free guidance.")
    ] = 0.0,
    ema: Annotated[bool, typer.Option("--ema/--no-ema", help="Keep EMA weights (unet_ema/).")] = True,
    ema_decay: Annotated[
        float, typer.Option("--ema-decay", help="EMA decay (warmed up as (1+step)/(10+step)).")
    ] = 0.999,
    prediction: Annotated[
        Optional[Prediction],
        typer.Option(
            "--prediction",
            help=(
                "What the network predicts for the image channels: x_0 (sample), the noise (epsilon: the BASD "
                "paper and ISDM) or v. Default: v for grey-scale runs (--channels; on CrackForest as grey it "
                "keeps the surface texture and trains the segmenter as well as real data, "
                "docs/recipe-ablation.md), x_0 for RGB runs, epsilon for --cond mask; a resumed run keeps its "
                "own."
            ),
            show_default=False,
        ),
    ] = None,
    mask_prediction: Annotated[
        Optional[Prediction],
        typer.Option(
            "--mask-prediction",
            help=(
                "What the network predicts for the analog-bit mask channels. Default: x_0 (sample), which "
                "keeps masks in their boxes whatever --prediction says; as --prediction for --cond mask and "
                "--latent. --prediction epsilon --mask-prediction epsilon is the BASD paper's recipe."
            ),
            show_default=False,
        ),
    ] = None,
    mask_loss_weight: Annotated[
        Optional[float],
        typer.Option(
            "--mask-loss-weight",
            help="Weight of the mask channels' loss relative to the image channels. Default: 4; 1 for --cond mask.",
            show_default=False,
        ),
    ] = None,
    min_snr_gamma: Annotated[
        Optional[float],
        typer.Option(
            "--min-snr-gamma", help="Min-SNR-gamma loss weighting (Hang et al.; 5 is usual); off when left out."
        ),
    ] = None,
    self_cond: Annotated[
        Optional[bool],
        typer.Option(
            "--self-cond/--no-self-cond",
            help="Self-conditioning on the previous x_0 estimate (Analog bits). Default: on; off for --cond mask.",
            show_default=False,
        ),
    ] = None,
    lr_warmup_steps: Annotated[int, typer.Option("--lr-warmup-steps", help="Linear learning-rate warm-up steps.")] = 0,
    lr_schedule: Annotated[
        LrSchedule,
        typer.Option("--lr-schedule", help="After the warm-up: constant, or cosine decay to 0 at the last step."),
    ] = LrSchedule.constant,
    channels: Annotated[
        Channels,
        typer.Option(
            "--channels",
            help=(
                "Image channels: auto = one grey channel when every training image is grey (R = G = B), else "
                "RGB; grey forces luminance; rgb forces three."
            ),
        ),
    ] = Channels.auto,
    mixed_precision: Annotated[
        Precision,
        typer.Option(
            "--mixed-precision",
            help=(
                "Autocast precision. auto: bf16 where the device runs it natively (Ampere+ GPUs, CPUs with "
                "AVX512-BF16 or AMX; weights stay float32), the launcher's setting under accelerate launch, "
                "else no."
            ),
        ),
    ] = Precision.auto,
    compile: Annotated[
        bool,
        typer.Option(
            "--compile",
            help=(
                "Run the network through torch.compile (compiles for minutes first; measure before use, "
                "docs/benchmarks.md)."
            ),
        ),
    ] = False,
    checkpoint_every: Annotated[
        int, typer.Option("--checkpoint-every", help="Steps between resume checkpoints.")
    ] = 500,
    checkpoints_total_limit: Annotated[
        Optional[int], typer.Option("--checkpoints-total-limit", help="Keep only the newest K checkpoints.")
    ] = 2,
    patience_steps: Annotated[
        Optional[int],
        typer.Option("--patience-steps", help="Stop when the epoch loss has not improved for this many steps."),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume", help="Continue from the newest checkpoint in --out (starts fresh when there is none)."
        ),
    ] = False,
    finetune: Annotated[
        Optional[Path],
        typer.Option(
            "--finetune",
            help=(
                "Start from the weights of this run folder (or a run pushed to the Hub: owner/name); --cond, "
                "--target, --model and --size left out are the run's."
            ),
        ),
    ] = None,
    split: SplitNameOpt = None,
    latent: Annotated[
        Optional[Path],
        typer.Option(
            "--latent",
            help="Local diffusers AutoencoderKL or VQModel folder: run diffusion on its latents (All-Latent).",
        ),
    ] = None,
    context: Annotated[
        bool,
        typer.Option(
            "--context",
            help=(
                "Also condition on the real image outside the boxes (and the region as a channel) and learn "
                "only inside the boxes, dilated by --context-margin: for `sample --onto` "
                "(docs/train.md#context-painting-into-real-images). With --cond basd|boxmask, --target joint."
            ),
        ),
    ] = False,
    crop: Annotated[
        Optional[int],
        typer.Option(
            "--crop",
            help=(
                "With --context: train on N x N windows cut at native resolution around random boxes (plus "
                "defect-free windows); --size is not used."
            ),
        ),
    ] = None,
    context_margin: Annotated[
        int,
        typer.Option(
            "--context-margin",
            help="With --context: pixels the region extends around each box (the seam blend band at sampling).",
        ),
    ] = 4,
    max_grad_norm: Annotated[float, typer.Option("--max-grad-norm", help="Gradient clipping norm (0 disables).")] = 1.0,
    preview_every: Annotated[
        int, typer.Option("--preview-every", help="Epochs between preview grids (0 = never).")
    ] = 25,
    progress: ProgressOpt = True,
    report_to: ReportToOpt = ReportTo.none,
    config: ConfigOpt = None,
    flip: Annotated[
        bool,
        typer.Option("--flip/--no-flip", help="Random horizontal and vertical flips of images, masks and box maps."),
    ] = True,
    weights: Annotated[
        Weights,
        typer.Option(
            "--weights",
            help="What unet/ holds: the epoch of the best training loss (ISDM) or the final epoch (BASD paper).",
        ),
    ] = Weights.best,
    class_fill: Annotated[
        ClassFill,
        typer.Option(
            "--class-fill",
            help=(
                "C-BASD class map (--cond basd): inside boxes only (the public code) or every pixel the "
                "nearest box's class (the paper's Algorithm 1; sample uses the run's)."
            ),
        ),
    ] = ClassFill.inside,
    dropout: Annotated[
        Optional[float],
        typer.Option(
            "--dropout",
            help=(
                "Dropout in the network's residual blocks. Default: the model size's (SPADE paper: 0.1, SDM's "
                "README; else 0)."
            ),
            show_default=False,
        ),
    ] = None,
    preset: PresetOpt = None,
) -> None:
    from defectsynth.diffusion.training import train

    run = train(
        dataset,
        out=out,
        cond=cond and cond.value,
        target=target and target.value,
        model=model and model.value,
        size=size,
        epochs=epochs,
        max_steps=max_steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        variance=variance.value if variance else None,
        drop_rate=drop_rate,
        ema=ema,
        ema_decay=ema_decay,
        prediction=prediction.value if prediction else None,
        mask_prediction=mask_prediction.value if mask_prediction else None,
        mask_loss_weight=mask_loss_weight,
        channels=channels.value,
        min_snr_gamma=min_snr_gamma,
        self_cond=self_cond,
        lr_warmup_steps=lr_warmup_steps,
        lr_schedule=lr_schedule.value,
        mixed_precision=mixed_precision.value,
        compile=compile,
        checkpoint_every=checkpoint_every,
        checkpoints_total_limit=checkpoints_total_limit,
        patience_steps=patience_steps,
        resume=resume,
        finetune=finetune,
        split=split,
        latent=latent,
        context=context,
        crop=crop,
        context_margin=context_margin,
        max_grad_norm=max_grad_norm,
        preview_every=preview_every,
        progress=progress,
        report_to=report_to.value,
        flip=flip,
        weights=weights.value,
        class_fill=class_fill.value,
        dropout=dropout,
        preset=chosen_preset(preset, "train", finetune is not None),
    )
    print_run_summary(run)


def print_run_summary(run: Path) -> None:
    import json
    import os

    if os.environ.get("RANK", "0") != "0":  # under accelerate launch: the main process reports
        return
    from defectsynth.diffusion.checkpoint import checkpoint_dirs

    log = run / "log.jsonl"
    lines = [json.loads(x) for x in log.read_text(encoding="utf-8").splitlines()] if log.is_file() else []
    saved = checkpoint_dirs(run)
    step = json.loads((saved[-1] / "trainer.json").read_text(encoding="utf-8"))["step"] if saved else None
    if lines:
        last = lines[-1]
        steps = f"steps {last['step']}"
        if step is not None and step > last["step"]:  # stopped inside an epoch (--max-steps): that part has no log line
            steps = f"steps {step} (the last whole epoch ended at step {last['step']})"
        console.print(f"epochs {last['epoch']}, {steps}, last loss {last['loss']:.4f}, best loss {last['best']:.4f}")
    console.print(f"[green]wrote[/] {run}")


def register(app: typer.Typer) -> None:
    app.command(
        "train",
        help="Train a box-guided joint image + mask diffusion model (BASD paper, ISDM checkpointing).",
        epilog=EXAMPLES,
    )(train_command)
