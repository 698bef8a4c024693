"""Typed, frozen configurations of ``train`` and ``sample`` and their JSON form.

:class:`DiffusionTrainConfig` is what :func:`defectsynth.diffusion.training.train` resolved from its
keyword arguments; its :meth:`~DiffusionTrainConfig.to_json` is ``run.json``'s ``"args"``: the same
keys in the same order (the order of ``train``'s keyword arguments, ``progress`` left out), paths
as strings. :meth:`~DiffusionTrainConfig.from_json` reads the ``"args"`` of any run.json back: an
unknown key is refused, a key missing from a run written before its option existed takes the value
such runs used (the field defaults: the BASD paper code's plain recipe, ``training.PLAIN_RECIPE``).

:class:`SampleConfig` is the request ``sample`` draws (``.sampling/settings.json``, which a rerun
must match to resume).

The name differs from :class:`defectsynth.evaluation.training.TrainConfig` (the segmentation
networks of ``evaluate``) on purpose: the two train different things.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields, replace
from pathlib import Path
from typing import Any

from defectsynth.diffusion.context import CONTEXT_MARGIN
from defectsynth.errors import DatasetError


@dataclass(frozen=True)
class DiffusionTrainConfig:
    """The options of one diffusion training run, as resolved by ``train`` (the CLI options of the
    same names; docs/train.md). Defaults: the values of runs written before an option existed."""

    dataset: str  # absolute path of the dataset folder
    out: str  # the run folder, as given
    cond: str = "basd"  # basd | boxmask | mask | none
    target: str = "joint"  # joint | image | mask
    model: str = "small"  # tiny | small | base | paper
    size: str | None = None  # WIDTHxHEIGHT once the data is read; None: the dataset's
    epochs: int = 500
    max_steps: int | None = None
    batch_size: int = 8
    lr: float = 1e-4
    seed: int = 0
    variance: str = "fixed"  # fixed | learned
    drop_rate: float = 0.0
    ema: bool = True
    ema_decay: float = 0.999
    prediction: str | None = "epsilon"  # epsilon | sample | v; None until the channel count is known
    mask_prediction: str | None = "epsilon"  # None: as prediction
    mask_loss_weight: float = 1.0
    min_snr_gamma: float | None = None
    self_cond: bool = False
    lr_warmup_steps: int = 0
    lr_schedule: str = "constant"  # constant | cosine
    channels: str = "rgb"  # rgb | grey ("auto" until the data is read)
    mixed_precision: str = "no"  # no | fp16 | bf16 (as resolved)
    compile: bool = False
    checkpoint_every: int = 500
    checkpoints_total_limit: int | None = 2
    patience_steps: int | None = None
    resume: bool = False
    finetune: str | None = None  # absolute path of the run started from
    split: str | None = None  # as given; run.json's "dataset.split" holds the one used
    latent: str | None = None  # absolute path of the autoencoder
    context: bool = False
    crop: int | None = None
    context_margin: int = CONTEXT_MARGIN
    max_grad_norm: float = 1.0
    preview_every: int = 25
    report_to: str = "none"  # none | tensorboard | wandb
    flip: bool = True
    weights: str = "best"  # best | final
    class_fill: str = "inside"  # inside | nearest
    dropout: float | None = None  # None: the model size's
    preset: dict[str, Any] | None = None  # defectsynth.presets.PresetRecord.to_json()

    def to_json(self) -> dict[str, Any]:
        """run.json's ``"args"``: every field in order, paths as strings."""
        return {f.name: (str(v) if isinstance(v, Path) else v) for f in fields(self) for v in (getattr(self, f.name),)}

    @classmethod
    def from_json(cls, args: dict[str, Any], path: str | Path | None = None) -> "DiffusionTrainConfig":
        """The config of a run.json's ``"args"`` (``path``: the file, for the error line)."""
        return _from_json(cls, args, path, "run.json args")

    def replace(self, **changes: Any) -> "DiffusionTrainConfig":
        """A copy with ``changes`` (what ``train`` learns once the data is read: size, channels ...)."""
        return replace(self, **changes)


@dataclass(frozen=True)
class SampleConfig:
    """One ``sample`` request of the diffusion backend (``.sampling/settings.json``): a rerun with
    an equal config resumes, any other is refused. ``force_guidance``, ``preset`` and ``plan`` are
    written only when set, as before they existed."""

    run: str  # absolute path of the run folder
    sampler: str  # ddpm | ddim | dpm
    steps: int
    rescale: bool
    guidance: float
    seed: int
    ema: bool
    num: int | None
    conditions: dict[str, Any] | None  # the conditions' dataset and split (None: unconditional)
    force_guidance: bool = False
    preset: dict[str, Any] | None = None
    placement: str | None = None  # --onto (diffusion/inpaint.py): keep | random
    onto: dict[str, Any] | None = None  # --onto: {"path", "split"} of the images painted into
    context_margin: int | None = None  # --onto: the run's context margin
    plan: dict[str, Any] | None = None  # {"path", "sha256"} of a balance plan

    def to_json(self) -> dict[str, Any]:
        """settings.json: the fields in order, the optional ones (defaults) only when set."""
        return {
            f.name: v for f in fields(self) for v in (getattr(self, f.name),) if f.default is MISSING or v != f.default
        }

    @classmethod
    def from_json(cls, settings: dict[str, Any], path: str | Path | None = None) -> "SampleConfig":
        return _from_json(cls, settings, path, "sampling settings")


def _from_json(cls, values: dict[str, Any], path: str | Path | None, what: str):
    names = [f.name for f in fields(cls)]
    unknown = [k for k in values if k not in names]
    if unknown:
        raise DatasetError(
            f"{what}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} (written by "
            "a newer defectsynth?)",
            path,
        )
    required = [
        f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING and f.name not in values
    ]
    if required:
        raise DatasetError(f"{what}: {', '.join(map(repr, required))} missing", path)
    return cls(**values)
