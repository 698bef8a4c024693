"""Paper presets: each seed paper's protocol as one name (``--preset NAME`` / ``preset=NAME``).

A preset holds, per command (``train``, ``sample``, ``sample_sd`` = ``sample --backend
sd-adapter``, ``evaluate``), the settings its paper states, each with where the paper states it
(``source``: section, table, equation) and a flag for the values the paper leaves open
(``open=True``: our choice, ``note`` says why; also where the paper's value cannot be expressed
and ours stands in). Papers (``/work/shared/papers`` of the project,
listed in ``docs/presets/``):

- ``basd-paper``: Simoni & Pelosin, box-guided joint image + mask DDPM on Wood Surface Defects (000).
- ``isdm-paper``: Rabensteiner, Ugwu & Lanz, ISDM (002) with the thesis' details (001, section 6.2).
- ``all-latent-thesis``: Rabensteiner's MSc thesis, All-Latent (001, section 6.1), approximated:
  see :data:`NOT_EXPRESSED`.
- ``voc-paper``: Che et al., SDXL + T2I-Adapter augmentation on PASCAL VOC (003).

Resolution (:func:`resolve_preset`): every setting of the preset fills the option of the same name
unless the caller gave that option itself: options given explicitly win. The library functions
take ``preset=NAME`` (the options passed in the call are the explicit ones) or a
:class:`PresetRequest` (the CLI: the options typed on the command line); they record
:meth:`PresetRecord.to_json` (name, applied values with their sources, overridden names) in
``run.json`` (``args.preset``), the sample's ``dataset.json`` (``source.preset``) and the evaluate
report (``config.json`` / ``report.json``: ``config.preset``).
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from defectsynth.errors import OptionError

log = logging.getLogger(__name__)

COMMANDS = ("train", "sample", "sample_sd", "evaluate")
COMMAND_LABELS = {
    "train": "train",
    "sample": "sample",
    "sample_sd": "sample --backend sd-adapter",
    "evaluate": "evaluate",
}


@dataclass(frozen=True)
class Setting:
    """One preset value: ``source`` names where the paper states it (paper file number, section /
    table / equation); ``open`` marks a value the paper leaves open (our choice, ``note`` says why)."""

    value: Any
    source: str
    open: bool = False
    note: str = ""


def _s(value: Any, source: str, note: str = "") -> Setting:
    return Setting(value, source, False, note)


def _open(value: Any, note: str) -> Setting:
    return Setting(value, "not stated", True, note)


def _instead(value: Any, source: str, note: str) -> Setting:
    """The paper states a value defectsynth cannot express: ours instead (marked open, ``note`` says what differs)."""
    return Setting(value, source, True, note)


BASD = "000"  # Simoni & Pelosin
THESIS = "001"  # Rabensteiner, MSc thesis
ISDM = "002"  # Rabensteiner, Ugwu & Lanz
VOC = "003"  # Che et al.

PAPERS = {
    "basd-paper": (
        f"{BASD}: Simoni & Pelosin, Bounding Box-Guided Diffusion for Synthesizing Industrial Images "
        "and Segmentation Maps (Wood Surface Defects)"
    ),
    "isdm-paper": (
        f"{ISDM}: Rabensteiner, Ugwu & Lanz, ISDM (Lemons), with the thesis {THESIS} section 6.2 for "
        "what the paper leaves to SDM's defaults"
    ),
    "all-latent-thesis": f"{THESIS}: Rabensteiner, MSc thesis, All-Latent (Lemons), section 6.1",
    "voc-paper": (
        f"{VOC}: Che et al., Enhanced Generative Data Augmentation for Semantic Segmentation via "
        "Stronger Guidance (PASCAL VOC)"
    ),
}

# The thesis' validation (001 section 7.1.2; the ISDM paper section 4 states the same), shared by
# isdm-paper and all-latent-thesis.
_THESIS_EVALUATE = {
    "models": _s(["unetplusplus", "fpn", "deeplabv3plus"], f"{ISDM} §4; {THESIS} §7.1.2"),
    "encoder": _s("resnet34", f"{ISDM} §4; {THESIS} §7.1.2"),
    "encoder_weights": _s("imagenet", f'{ISDM} §4 ("pre-trained on ImageNet")'),
    "epochs": _s(50, f"{ISDM} §4; {THESIS} §7.1.2"),
    "budget": _s("epochs", f"{THESIS} §7.1.2 (every configuration 50 epochs)"),
    "size": _s("256", f"{ISDM} §4 (256x256)"),
    "augment": _s("none", f'{ISDM} §4 ("no data augmentation"); {THESIS} §7.1.2'),
    "repeats": _s(3, f'{ISDM} §5 ("repeated three times")'),
    "mix": _s(
        ["R=all,S=0", "R=0,S=all", "R=0,S=R", "R=all,S=R", "R=all,S=100", "R=all,S=400", "R=all,S=700", "R=all,S=all"],
        f"{THESIS} §7.1.2 (the baseline and the seven configurations)",
    ),
    "optimizer": _open(
        "adam",
        "the papers name none; Adam is what Macháček et al.'s validation code, which the thesis reuses (§7.1.2), uses",
    ),
    "lr": _open(1e-4, "the papers name none; Macháček et al.'s validation code"),
    "lr_schedule": _open("step", "the papers name none; /10 halfway, as in Macháček et al.'s validation code"),
    "loss": _open("dice", "the papers name none; Macháček et al.'s validation code trains with Dice"),
    "batch_size": _open(8, "the papers name none"),
}

PRESETS: dict[str, dict[str, dict[str, Setting]]] = {
    "basd-paper": {
        "train": {
            "cond": _s("basd", f"{BASD} §3.2, Fig. 2 (BASD + C-BASD maps concatenated to the input, §3.3)"),
            "target": _s("joint", f"{BASD} §3.3 (x_0 = (I_n, S_n), RGB + analog-bit mask)"),
            "class_fill": _s(
                "nearest",
                f"{BASD} Algorithm 1 (every pixel takes the class of the nearest box)",
                "the public code fills the class map inside boxes only: --class-fill inside",
            ),
            "channels": _s("rgb", f"{BASD} §3.1 (I_n is H x W x 3)"),
            "prediction": _s("epsilon", f"{BASD} §3.3 eq. (4)"),
            "mask_prediction": _s("epsilon", f"{BASD} §3.3 eq. (4) (one noise loss over image and mask channels)"),
            "mask_loss_weight": _s(1.0, f"{BASD} §3.3 eq. (4) (unweighted)"),
            "min_snr_gamma": _s(None, f"{BASD} §3.3 eq. (4) (unweighted)"),
            "self_cond": _s(False, f"{BASD} §3.3 eq. (4) (the network sees x_t, t and the box maps only)"),
            "variance": _s("fixed", f"{BASD} §3.3 eq. (3)-(4) (L_simple, fixed sigma_t)"),
            "drop_rate": _s(0.0, f"{BASD} §3.3 (no classifier-free guidance)"),
            "epochs": _s(300, f"{BASD} §4.1"),
            "lr": _s(1e-5, f"{BASD} §4.1 (AdamW)"),
            "batch_size": _s(
                8, f"{BASD} §4.1", "on two GPUs: whether 8 is per GPU or in total is not said; here per process"
            ),
            "model": _open("paper", "the paper gives no widths; 'paper' is the 114M network of its public code"),
            "size": _open(
                "352x128",
                "the paper states no training size; 352x128 is the 2800x1024 wood images padded and downscaled "
                "8x (prepare wood)",
            ),
            "ema": _open(False, "the paper mentions no EMA"),
            "flip": _open(False, "the paper mentions no augmentation"),
            "weights": _open(
                "final", "the paper trains 300 epochs and names no checkpoint selection: the last epoch's weights"
            ),
            "lr_warmup_steps": _open(0, "the paper gives one learning rate"),
            "lr_schedule": _open("constant", "the paper gives one learning rate"),
            "max_grad_norm": _open(0.0, "the paper mentions no gradient clipping"),
        },
        "sample": {
            "scheduler": _s("ddpm", f"{BASD} §4.1 (DDPM)"),
            "steps": _s(
                1000,
                f'{BASD} §4.1 ("Both during training and testing the number of denoising iterations were set to 1000")',
            ),
            "rescale": _s(False, f"{BASD} §4.1 (the full 1000-step schedule)"),
            "guidance": _s(1.0, f"{BASD} §3.3 (no guidance)"),
            "ema": _open(False, "the preset trains without EMA (the paper mentions none)"),
        },
        "evaluate": {
            "models": _s(["unet"], f"{BASD} §4.1 (UNet)"),
            "encoder": _s("resnet18", f"{BASD} §4.1 (ResNet-18 backbone)"),
            "per_class_binary": _s(
                True, f'{BASD} §4.1 ("a single network for each segmentation class"), Table 4 (F1 per class)'
            ),
            "epochs": _s(100, f"{BASD} §4.1"),
            "budget": _s("epochs", f'{BASD} §4.1 ("The training lasted 100 epochs")'),
            "optimizer": _s("adamw", f"{BASD} §4.1"),
            "lr": _s(1e-5, f"{BASD} §4.1"),
            "batch_size": _s(64, f"{BASD} §4.1"),
            "train_split": _s("val", f"{BASD} §4.1 Dataset, §4.3 (the 20% split; `prepare wood` names it val)"),
            "test_split": _s("test", f"{BASD} §4.3, Table 4 (the 10% real test split)"),
            "mix": _s(["R=all,S=0", "R=0,S=all", "R=all,S=all"], f"{BASD} Table 4 (Real, Synth, Real+Synth)"),
            "lr_schedule": _open("constant", "the paper gives one learning rate"),
            "size": _open("352x128", "the paper states no size; the wood size of prepare wood"),
            "encoder_weights": _open("imagenet", "the paper does not say whether the backbone is pretrained"),
            "loss": _open("dice", "the paper names no loss"),
            "augment": _open("none", "the paper mentions no augmentation"),
            "repeats": _open(1, "Table 4 reports single numbers"),
        },
    },
    "isdm-paper": {
        "train": {
            "cond": _s("mask", f"{ISDM} §4; {THESIS} §6.2.1 (SDM: the mask enters the decoder through SPADE)"),
            "target": _s("image", f"{THESIS} §6.2.1 (semantic image synthesis: real masks are reused)"),
            "variance": _s("learned", f"{ISDM} §4 (mean and standard deviation predicted, L_hybrid)"),
            "prediction": _s("epsilon", f"{ISDM} §4; {THESIS} §6.2.1 (Guided Diffusion's noise prediction)"),
            "self_cond": _s(False, f"{THESIS} §6.2.1 (SDM unchanged)"),
            "drop_rate": _s(0.0, f"{THESIS} §6.2.1 (the drop rate belongs to the optional finetuning stage)"),
            "weights": _s(
                "best",
                f"{ISDM} §4; {THESIS} §6.2.1 (the checkpoint is overwritten only when the epoch's training "
                "loss improves)",
            ),
            "epochs": _s(20000, f'{THESIS} §6.2.1 ("a maximum number of epochs (20000)")'),
            "size": _s("256", f"{THESIS} §7.1.2 (256x256, natively supported by the DMs used)"),
            "model": _s(
                "paper",
                f'{THESIS} §6.2.1 ("mainly stay with the default configurations for the SDM"): SDM\'s 256 px network',
            ),
            "ema": _open(True, "not stated; SDM's default (Guided Diffusion keeps DDPM's EMA, thesis §3.3.1)"),
            "ema_decay": _open(
                0.9999,
                "not stated; SDM's default ema_rate: DDPM's 0.9999 (thesis §3.2), kept by Improved Diffusion (§3.3.1)",
            ),
            "dropout": _open(0.0, "not stated; ISDM's code trains with dropout 0.0 (SDM's README flags 0.1)"),
            "lr": _open(1e-4, "not stated; SDM's default learning rate"),
            "lr_warmup_steps": _open(0, "not stated; SDM's constant learning rate"),
            "lr_schedule": _open("constant", "not stated; SDM's constant learning rate"),
            "max_grad_norm": _open(0.0, "not stated; Guided Diffusion does not clip gradients"),
        },
        "sample": {
            "scheduler": _s(
                "ddpm", f'{THESIS} §6.2.1 (DDIM "did not work well"; ancestral sampling with rescaled timesteps)'
            ),
            "steps": _s(300, f"{ISDM} §4; {THESIS} §6.2.1"),
            "rescale": _s(True, f"{ISDM} §4 (timestep rescaling); {THESIS} §6.2.1"),
            "guidance": _s(1.5, f'{THESIS} §6.2.1 ("For sampling a guidance scale of s = 1.5 was applied"), §7.3.6'),
            "force_guidance": _s(
                True,
                f"{THESIS} §6.2.1 and Fig. 6.4 (every ISDM sampling step combines the mask and the null label; "
                "the non-finetuned models of §6.2.2 were sampled the same way)",
            ),
            "num": _s(1000, f"{ISDM} §5; {THESIS} §7.1.2 (1000 image-mask pairs)"),
            "ema": _open(True, "not stated; SDM samples its EMA weights"),
        },
        "evaluate": dict(_THESIS_EVALUATE),
    },
    "all-latent-thesis": {
        "train": {
            "epochs": _s(1000, f"{THESIS} §6.1.2 (both LDMs trained for 1000 epochs)"),
            "variance": _s("fixed", f"{THESIS} §6.1.1 (a loss like L_simple)"),
            "prediction": _s("epsilon", f"{THESIS} §6.1.1 (L_simple: the noise)"),
            "mask_prediction": _s("epsilon", f"{THESIS} §6.1.1"),
            "mask_loss_weight": _s(1.0, f"{THESIS} §6.1.1 (one loss)"),
            "self_cond": _s(False, f"{THESIS} §6.1.1 (the LDM configuration has none)"),
            "size": _s("256", f"{THESIS} §7.1.2 (256x256)"),
            "drop_rate": _s(0.0, f"{THESIS} §6.1.1 (no guidance)"),
            "weights": _instead(
                "best",
                f"{THESIS} §6.1.2 (the epoch chosen on a 20% validation split: 800 and 650)",
                "defectsynth has no validation loss for diffusion: the best training loss instead",
            ),
            "ema": _open(True, "not stated; the LDM configurations keep an EMA"),
            "ema_decay": _open(0.9999, "not stated; the LDM default"),
        },
        "sample": {
            "scheduler": _s("ddim", f"{THESIS} §6.1.2 (DDIM)"),
            "steps": _s(250, f"{THESIS} §6.1.2 (250 time steps)"),
            "num": _s(2000, f"{THESIS} §6.1.2 (2000 image-mask pairs)"),
            "guidance": _s(1.0, f"{THESIS} §6.1.1 (no guidance)"),
        },
        "evaluate": dict(_THESIS_EVALUATE),
    },
    "voc-paper": {
        "sample_sd": {
            "steps": _s(30, f"{VOC} §4.1.2 (SDXL 1.0 with 30 time steps)"),
            "prior": _s("lineart", f"{VOC} §3.2.2, §4.1.2 (Line-Art Edge is the default visual prior)"),
            "blend": _s("0.7,0.9", f"{VOC} §4.3.4, Table 7 (omega_1 = 0.7, omega_2 = 0.9)"),
            "prompt_template": _s(
                "{caption}; {classes}", f"{VOC} §3.2.1 (Class-Prompt Appending: caption + class names)"
            ),
            "guidance": _open(7.5, "the paper gives no guidance scale; the SDXL pipeline default"),
            "conditioning_scale": _open(1.0, "the paper gives no adapter scale"),
        },
        "evaluate": {
            "models": _s(["deeplabv3plus", "pspnet"], f"{VOC} §4.1.2 (DeepLabV3+, PSPNet; Mask2Former is not in smp)"),
            "size": _s("512", f"{VOC} §4.1.2 (512 x 512)"),
            "budget": _s("steps", f"{VOC} §4.1.2 (30k steps)"),
            "steps": _s(30000, f"{VOC} §4.1.2"),
            "encoder": _s("resnet50", f"{VOC} §4.3 (DeepLabV3+ with a ResNet-50 backbone), Table 1"),
            "train_split": _s("train", f"{VOC} §4.1.1 (the VOC training set)"),
            "test_split": _s(
                "val", f"{VOC} §4.1.1, Table 1 (mIoU on the val set; `prepare voc` keeps the official val split)"
            ),
            "encoder_weights": _open("imagenet", "not stated; MMSegmentation starts from ImageNet backbones"),
            "optimizer": _s(
                "sgd", f"{VOC} §4.1.2 (SGD with MMSegmentation's standard settings: momentum 0.9, weight decay 5e-4)"
            ),
            "lr": _s(0.01, f"{VOC} §4.1.2 (MMSegmentation's standard SGD rate)"),
            "lr_schedule": _s("poly", f"{VOC} §4.1.2 (MMSegmentation's PolyLR, power 0.9 down to 1e-4, every step)"),
            "batch_size": _open(16, "not stated; MMSegmentation's VOC configurations: 4 images on each of 4 GPUs"),
            "augment": _instead(
                "classic",
                f"{VOC} §4.1.2 (RandomResize, RandomCrop, RandomFlip)",
                "classic = flips, affine, blur/sharpen, contrast/hue",
            ),
            "repeats": _open(1, "the tables report single numbers"),
            "mix": _s(["R=all,S=0", "R=all,S=all"], f"{VOC} Table 1 (D_origin vs D_final)"),
        },
    },
}

# What a preset cannot set, said once per preset (docs/presets/<name>.md repeats it).
NOT_EXPRESSED = {
    "basd-paper": [
        "the segmenter of Table 4 is trained without a validation split; defectsynth evaluate holds out 20% of "
        "--train-split to choose the epoch",
        "--conditions (the boxes of the 20% split, §4.3) is a path: give it to sample",
    ],
    "isdm-paper": [
        "the finetuning stage's drop rate is not stated (SDM's README uses 0.2): train --finetune RUN --drop-rate 0.2",
        "the batch size is not stated",
    ],
    "all-latent-thesis": [
        "the thesis' LDMs concatenate a VQ-F4 latent with the rescaled mask and train with an L1 loss; defectsynth "
        "trains the SPADE network "
        "(--cond mask) or a latent run (--latent) with the squared error",
        "epoch selection on a validation split (§6.1.2) is replaced by the best training loss",
        "the top-K filter (§6.1.1 step 5) is `filter --by segmenter`",
    ],
    "voc-paper": [
        "the VOC paper trains no diffusion model: there is no train preset",
        "Mask2Former and RandomResize/RandomCrop are not in smp/defectsynth (--augment classic: flips, affine, "
        "blur, colour instead)",
        "the 1/2 ... 1/16 partitions of Wang et al. (2022) are fixed lists; --mix R=732 ... R=92 draws seeded "
        "nested subsets instead",
        "evaluate holds out 20% of the training split to choose the step; the paper reports the best val score "
        "(Fig. 5)",
    ],
}


@dataclass(frozen=True)
class PresetRequest:
    """A preset and the options the caller set itself (the CLI: typed on the command line)."""

    name: str
    given: frozenset[str] = field(default_factory=frozenset)


@dataclass
class PresetRecord:
    """A resolved preset: ``values`` to apply (the settings whose option was not given),
    ``overridden`` (the settings an explicit option replaced)."""

    name: str
    command: str
    values: dict[str, Any]
    settings: dict[str, Setting]
    overridden: list[str]
    inherited: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        applied = {
            k: {"value": v, "source": self.settings[k].source, "open": self.settings[k].open}
            for k, v in self.values.items()
        }
        record = {"name": self.name, "paper": PAPERS[self.name], "applied": applied, "overridden": self.overridden}
        if self.inherited:
            record["inherited"] = self.inherited  # taken from the --finetune run instead
        return record


def preset_settings(name: str, command: str) -> dict[str, Setting]:
    """The settings of preset ``name`` for ``command``; one-line errors for an unknown name or a
    preset without settings for that command."""
    if name not in PRESETS:
        raise OptionError(f"--preset: unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    settings = PRESETS[name].get(command)
    if settings is None:
        has = ", ".join(COMMAND_LABELS[c] for c in PRESETS[name])
        why = f" ({NOT_EXPRESSED[name][0]})" if command == "train" and name == "voc-paper" else ""
        raise OptionError(
            f"--preset {name}: the paper has no settings for {COMMAND_LABELS[command]}{why}; it has settings for {has}"
        )
    return settings


# What ``train --finetune RUN`` takes from RUN when left out (diffusion.training.INHERITED): a preset does not set them
# then.
FINETUNE_INHERITS = ("cond", "target", "model", "size")


def resolve_preset(name: str, command: str, given: Iterable[str], finetune: bool = False) -> PresetRecord:
    """Preset ``name`` for ``command`` with the options in ``given`` left to the caller (and, for a
    ``train --finetune``, :data:`FINETUNE_INHERITS` left to the run it starts from)."""
    settings = preset_settings(name, command)
    given = set(given)
    inherited = [k for k in FINETUNE_INHERITS if finetune and command == "train" and k in settings and k not in given]
    values = {k: s.value for k, s in settings.items() if k not in given and k not in inherited}
    return PresetRecord(name, command, values, settings, sorted(k for k in settings if k in given), inherited)


def applies_preset(command: str):
    """Decorator for the library function of ``command``: a ``preset`` keyword (a name or a
    :class:`PresetRequest`) fills every preset setting the call does not give, logs them, and hands
    the function ``preset=`` :meth:`PresetRecord.to_json` to record. Without a preset the call is
    unchanged; a dict (a record resolved before) is passed on as it is."""

    def decorate(fn):
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def with_preset(*args, **kwargs):
            preset = kwargs.pop("preset", None)
            if preset is None or isinstance(preset, dict):
                return fn(*args, preset=preset, **kwargs)
            if isinstance(preset, PresetRequest):
                name, given = preset.name, preset.given
            else:
                name, given = str(preset), signature.bind_partial(*args, **kwargs).arguments.keys()
            record = resolve_preset(name, command, given, finetune=kwargs.get("finetune") is not None)
            for key, value in record.values.items():
                log.info(
                    "preset %s: %s = %r (%s%s)",
                    name,
                    key,
                    value,
                    record.settings[key].source,
                    ", our choice" if record.settings[key].open else "",
                )
            return fn(*args, **{**kwargs, **record.values}, preset=record.to_json())

        return with_preset

    return decorate


def settings_rows(record: PresetRecord) -> list[tuple[str, str, str, str]]:
    """(option, value, source, note) per setting of ``record``, in the preset's order; the note says
    when an explicit option (or the ``--finetune`` run) replaced the setting."""
    rows = []
    for key, setting in record.settings.items():
        value = record.values.get(key, setting.value)
        note = (
            "given explicitly: not applied"
            if key in record.overridden
            else ("our choice: " + setting.note if setting.open else setting.note)
        )
        if key in record.inherited:
            note = "from the --finetune run: not applied"
        rows.append((key, _show(value), setting.source, note))
    return rows


def _show(value: Any) -> str:
    if isinstance(value, list):
        return (";" if any("," in str(v) for v in value) else ",").join(map(str, value))
    return "none" if value is None else str(value)
