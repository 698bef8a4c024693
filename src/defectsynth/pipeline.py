"""A trained run folder as a diffusers pipeline: :class:`DefectsynthPipeline`.

``defectsynth train`` writes ``model_index.json`` next to ``run.json``, so a run folder is also a
diffusers pipeline folder::

    runs/<name>/
      model_index.json   _class_name DefectsynthPipeline; components unet, unet_ema, scheduler;
                         "run": what sampling needs from run.json (:func:`run_config`)
      unet/  unet_ema/  scheduler/  run.json  ...   (the run, as before)

Load it with ``DefectsynthPipeline.from_pretrained(folder_or_hub_id)``, or with plain
``DiffusionPipeline.from_pretrained`` once this module is imported (importing it registers the class
with diffusers, which never imports a module a folder names). A run folder without
``model_index.json`` (trained before it existed) loads with ``DefectsynthPipeline.from_pretrained``
or :meth:`DefectsynthPipeline.from_run`. Runs on a latent autoencoder (``train --latent``) are not
pipelines: they sample with ``defectsynth sample`` only.

The EMA weights are what sampling uses: when ``unet_ema`` is given (the folder has ``unet_ema/``),
the pipeline's ``unet`` *is* the EMA network and the plain one is dropped (``save_pretrained`` then
writes it as ``unet/``). ``DefectsynthPipeline.from_pretrained(folder, unet_ema=None)`` loads the
plain (best-epoch) weights instead (``DiffusionPipeline.from_pretrained`` ignores ``unet_ema=None``).

Calling the pipeline runs the sampler of ``defectsynth sample`` (:func:`~defectsynth.diffusion.denoising.denoise`
and :func:`~defectsynth.diffusion.denoising.decode`): ``pipe(boxes=...)`` for box-conditioned runs,
``pipe(masks=...)`` for mask-conditioned ones, ``pipe(batch_size=N)`` for unconditional ones.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from diffusers import DDIMScheduler, DDPMScheduler, DiffusionPipeline, DPMSolverMultistepScheduler
from diffusers.utils import BaseOutput

import defectsynth.diffusion.spade_unet  # noqa: F401  (diffusers resolves the SPADE UNet's library from sys.modules)
from defectsynth.data.files import write_json
from defectsynth.data.model import Box, ClassInfo
from defectsynth.diffusion.losses import recipe_prediction, scheduler_prediction
from defectsynth.diffusion.models import Layout
from defectsynth.diffusion.schedules import DEFAULT_STEPS, Sampler, make_sampler, train_scheduler
from defectsynth.errors import OptionError
from defectsynth.formats.run import read_run_json

# the pipeline's scheduler class -> the name `sample --scheduler` knows it by
SCHEDULER_NAMES = {DDPMScheduler: "ddpm", DDIMScheduler: "ddim", DPMSolverMultistepScheduler: "dpm"}
OUTPUT_TYPES = ("pil", "np")


@dataclass
class DefectsynthPipelineOutput(BaseOutput):
    """What :class:`DefectsynthPipeline` returns.

    images: ``output_type="pil"``: a list of RGB ``PIL.Image``; ``"np"``: (B, H, W, 3) uint8.
    masks: class ids, 0 = background (``"pil"``: mode "L" images; ``"np"``: (B, H, W) uint8), decoded
    from the analog bits (target joint or mask) or the condition masks (mask-conditioned runs);
    None for image-only runs without a mask condition.
    invalid_mask_pixels: per sample, mask pixels whose bits decoded to a code beyond the class count
    (written as background).
    """

    images: Any
    masks: Any
    invalid_mask_pixels: list[int]


def run_config(info: dict[str, Any]) -> dict[str, Any]:
    """What sampling needs from a run.json ``info`` (the pipeline's ``run`` config)."""
    args, layout = info["args"], Layout(**info["layout"])
    prediction = recipe_prediction(args, layout)
    return {
        "cond": args["cond"], "target": args["target"], "variance": args["variance"],
        "drop_rate": args.get("drop_rate", 0.0),
        "prediction": prediction if isinstance(prediction, str) else list(prediction), "classes": info["classes"],
        "num_classes": info["num_classes"], "size": list(info["size"]), "layout": dict(info["layout"]),
        "class_fill": args.get("class_fill", "inside"),
    }  # fmt: skip


def unet_entry(info: dict[str, Any]) -> list[str]:
    """model_index.json's [library, class] of a run's network."""
    if "label_channels" in (info.get("unet") or {}):
        return ["defectsynth.diffusion.spade_unet", "SPADEUNet2DModel"]
    return ["diffusers", "UNet2DModel"]


def model_index(info: dict[str, Any]) -> dict[str, Any]:
    """The ``model_index.json`` of a run folder (what ``save_pretrained`` of its pipeline writes)."""
    import diffusers

    entry = unet_entry(info)
    return {
        "_class_name": DefectsynthPipeline.__name__, "_diffusers_version": diffusers.__version__,
        "run": run_config(info), "scheduler": ["diffusers", "DDPMScheduler"], "unet": entry,
        "unet_ema": entry if info["args"].get("ema", True) else [None, None],
    }  # fmt: skip


def write_model_index(root: str | Path) -> bool:
    """Write ``root/model_index.json`` from its run.json (atomically); False for a latent run, which is no pipeline."""
    root = Path(root)
    info = read_run_json(root / "run.json")
    if info.get("latent"):
        return False
    write_json(root / "model_index.json", model_index(info))
    return True


class DefectsynthPipeline(DiffusionPipeline):
    """Image + mask sampling from a run trained by ``defectsynth train`` (see the module docstring).

    unet: the network (``UNet2DModel`` or ``SPADEUNet2DModel``); unet_ema: its EMA weights, which
    become ``unet`` when given; scheduler: the trained DDPM schedule, or a ``DDIMScheduler`` /
    ``DPMSolverMultistepScheduler`` to sample with (``sample --scheduler ddim|dpm``: :meth:`use_sampler`);
    run: :func:`run_config` of the run.
    """

    model_cpu_offload_seq = "unet"
    _optional_components = ["unet_ema"]

    def __init__(self, unet, scheduler, unet_ema=None, run: dict[str, Any] | None = None):
        super().__init__()
        if run is None:
            raise OptionError("DefectsynthPipeline needs run=run_config(run.json): the run it samples")
        self.register_modules(unet=unet if unet_ema is None else unet_ema, scheduler=scheduler, unet_ema=None)
        self.register_to_config(run=dict(run))

    # -- loading ----------------------------------------------------------------------------------
    @classmethod
    def from_run(cls, run, ema: bool = True) -> "DefectsynthPipeline":
        """The pipeline of a run folder (a path or a :class:`~defectsynth.diffusion.trained_run.Run`),
        with or without model_index.json; ``ema``: the EMA weights when the run has them."""
        from defectsynth.diffusion.trained_run import Run

        run = run if isinstance(run, Run) else Run.open(run)
        if run.info.get("latent"):
            raise OptionError(
                "a run on a latent autoencoder (train --latent) is not a pipeline: sample it with `defectsynth sample`",
                run.root,
            )
        scheduler = train_scheduler(run.args["variance"], scheduler_prediction(run.prediction))
        return cls(unet=run.load_unet(ema), scheduler=scheduler, run=run_config(run.info))

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """diffusers' ``from_pretrained``; a run folder without model_index.json (an older run) loads
        through :meth:`from_run` (``unet_ema=None``: the plain weights; no other options)."""
        folder = Path(str(pretrained_model_name_or_path))
        if folder.is_dir() and (folder / "run.json").is_file() and not (folder / "model_index.json").is_file():
            ema = kwargs.pop("unet_ema", True) is not None
            if kwargs:
                raise OptionError(
                    f"{', '.join(kwargs)}: a run folder without model_index.json loads without options (or add "
                    "it: write_model_index)",
                    folder,
                )
            return cls.from_run(folder, ema=ema)
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    def use_sampler(self, name: str, steps: int | None = None) -> "DefectsynthPipeline":
        """Set ``scheduler`` to the sampler ``sample --scheduler name`` uses (ddpm | ddim | dpm); returns self."""
        run = self.config.run
        self.scheduler = make_sampler(
            name, steps, run["variance"], False, scheduler_prediction(self.prediction)
        ).scheduler
        return self

    # -- the run ----------------------------------------------------------------------------------
    @property
    def prediction(self) -> str | tuple[str, ...]:
        p = self.config.run["prediction"]
        return p if isinstance(p, str) else tuple(p)

    @property
    def layout(self) -> Layout:
        return Layout(**self.config.run["layout"])

    @property
    def classes(self) -> list[ClassInfo]:
        return [ClassInfo(c["id"], c["name"], tuple(c["color"])) for c in self.config.run["classes"]]

    def defaults(self, steps: int | None, rescale: bool | None, guidance: float | None) -> tuple[int, bool, float]:
        """(steps, rescale, guidance) with the left-out ones as ``defectsynth sample`` fills them in
        (:func:`~defectsynth.diffusion.trained_run.run_defaults`) for the pipeline's scheduler."""
        from defectsynth.diffusion.trained_run import run_defaults

        name = self.sampler_name
        steps, rescale, guidance = run_defaults(SimpleNamespace(args=self.config.run), name, steps, rescale, guidance)
        return DEFAULT_STEPS[name] if steps is None else steps, rescale, guidance

    @property
    def sampler_name(self) -> str:
        name = SCHEDULER_NAMES.get(type(self.scheduler))
        if name is None:
            raise OptionError(
                f"scheduler: {type(self.scheduler).__name__} is not one of DDPMScheduler, DDIMScheduler, "
                "DPMSolverMultistepScheduler"
            )
        return name

    def sampler(self, steps: int, rescale: bool) -> Sampler:
        """The pipeline's scheduler set to ``steps`` steps; ``rescale``: ISDM's fresh N-step schedule instead."""
        run, name = self.config.run, self.sampler_name
        if rescale:
            return make_sampler(name, steps, run["variance"], True, scheduler_prediction(self.prediction))
        make_sampler(name, steps, run["variance"], False, scheduler_prediction(self.prediction))  # checks steps
        self.scheduler.set_timesteps(steps)
        learned = name == "ddpm" and self.scheduler.config.variance_type in ("learned", "learned_range")
        return Sampler(self.scheduler, 1.0, learned)

    # -- sampling ---------------------------------------------------------------------------------
    def conditions(self, boxes, masks, batch_size: int | None) -> tuple[torch.Tensor, list[np.ndarray] | None]:
        """(B, C_c, H, W) condition tensor of the request, and the condition masks (cond ``mask``)."""
        from defectsynth.diffusion.jobs import Job, job_condition

        run = self.config.run
        cond, size, n = run["cond"], tuple(run["size"]), run["num_classes"]
        given = {"boxes": boxes is not None, "masks": masks is not None, "batch_size": batch_size is not None}
        needed = {"none": "batch_size", "mask": "masks"}.get(cond, "boxes")
        wrong = [k for k, v in given.items() if v and k != needed]
        if wrong or not (given[needed] or cond == "none"):
            raise OptionError(
                f"this run (cond {cond}) samples from {needed}=...; {', '.join(wrong) or needed} "
                f"{'not taken' if wrong else 'missing'}"
            )
        if cond == "none":
            batch_size = 1 if batch_size is None else batch_size
            if batch_size < 1:
                raise OptionError(f"batch_size: must be >= 1, got {batch_size}")
            return torch.zeros((batch_size, 0, *size)), None
        if cond == "mask":
            masks = [self.check_mask(i, m) for i, m in enumerate(masks)]
            jobs = [Job(i, "", None, [], m) for i, m in enumerate(masks)]
        else:
            jobs = [Job(i, "", None, self.check_boxes(i, b)) for i, b in enumerate(boxes)]
        if not jobs:
            raise OptionError(f"{needed}: empty list, nothing to sample")
        return torch.stack([job_condition(j, size, cond, n, run.get("class_fill", "inside")) for j in jobs]), masks

    def check_boxes(self, i: int, boxes) -> list[Box]:
        """Image ``i``'s boxes (``Box`` or boxes/<stem>.json dicts), read as a boxes file is (``parse_boxes``)."""
        from defectsynth.formats.dataset import parse_boxes

        height, width = self.config.run["size"]
        items = [b.to_json() if isinstance(b, Box) else b for b in boxes] if isinstance(boxes, (list, tuple)) else boxes
        boxes = parse_boxes(items, Path(f"boxes[{i}]"), set(range(self.config.run["num_classes"])))
        problem = next((p for p in (b.problem(height, width) for b in boxes) if p), None)
        if problem:
            raise OptionError(f"boxes[{i}]: {problem}")
        return boxes

    def check_mask(self, i: int, mask) -> np.ndarray:
        mask = np.asarray(mask)
        size, n = tuple(self.config.run["size"]), self.config.run["num_classes"]
        if mask.shape != size:
            raise OptionError(f"masks[{i}]: shape {mask.shape}, the run samples (height, width) {size}")
        bad = np.setdiff1d(np.unique(mask), [*range(n), 255])
        if len(bad):
            raise OptionError(f"masks[{i}]: class ids {bad.tolist()} not in the run's 0..{n - 1} (255 = ignore)")
        return mask.astype(np.uint8)

    @staticmethod
    def generators(generator, batch: int) -> list[torch.Generator]:
        """One generator per sample: a list is taken as it is, one generator is shared (drawn from in
        turn), None draws a seed from torch's global generator."""
        if isinstance(generator, (list, tuple)):
            if len(generator) != batch:
                raise OptionError(f"generator: {len(generator)} generators for a batch of {batch}")
            return list(generator)
        if generator is None:
            generator = torch.Generator().manual_seed(int(torch.randint(0, 2**62, ())))
        return [generator] * batch

    @torch.no_grad()
    def __call__(
        self,
        boxes: list[list[Box | dict[str, Any]]] | None = None,
        masks: list[np.ndarray] | None = None,
        batch_size: int | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        rescale: bool | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        output_type: str = "pil",
        batch_rows: int | None = None,
        return_dict: bool = True,
        force_guidance: bool = False,
    ) -> DefectsynthPipelineOutput | tuple:
        """Sample one image (+ mask) per condition.

        boxes: per image a list of :class:`~defectsynth.data.Box` or ``{"class": c, "box": [x_min,
        y_min, x_max, y_max]}`` (half-open pixels in the run's size), for box-conditioned runs (cond
        basd | boxmask). masks: per image an (H, W) uint8 class-id mask (255 = ignore), for
        mask-conditioned runs (cond mask). batch_size: the number of images of an unconditional run
        (default 1).
        num_inference_steps, guidance_scale, rescale: None = what ``defectsynth sample`` uses for
        the run and the pipeline's scheduler (:meth:`defaults`). generator: one per image (the
        images then do not depend on the batch), or one for all. output_type: ``"pil"`` or ``"np"``
        (uint8). batch_rows: pad the network's batch to this many rows, so an image does not
        depend on which images share the call (``denoising.fixed_rows``). force_guidance: apply
        ``guidance_scale`` to a run trained without a drop rate too (``sample --force-guidance``).
        """
        from defectsynth.diffusion.denoising import decode, denoise

        if output_type not in OUTPUT_TYPES:
            raise OptionError(f"output_type: choose pil or np, got {output_type!r}")
        run = self.config.run
        cond, condition_masks = self.conditions(boxes, masks, batch_size)
        steps, rescale, guidance = self.defaults(num_inference_steps, rescale, guidance_scale)
        if guidance != 1.0 and not run["drop_rate"] and not force_guidance:
            raise OptionError(
                "guidance_scale needs a run trained with --drop-rate > 0 (classifier-free guidance), or "
                "force_guidance=True"
            )
        sampler = self.sampler(steps, rescale)
        generators = self.generators(generator, len(cond))
        x = denoise(
            self.unet, self.layout, sampler, cond.to(self.device), generators, guidance, self.prediction, batch_rows
        )
        decoded = [decode(xi, run["target"], run["num_classes"], self.classes, self.layout.image_channels) for xi in x]
        images = [d[0] for d in decoded]
        out_masks = condition_masks if condition_masks is not None else [d[1] for d in decoded]
        if out_masks[0] is None:
            out_masks = None
        invalid = [d[2] for d in decoded]
        if output_type == "np":
            images, out_masks = np.stack(images), None if out_masks is None else np.stack(out_masks)
        else:
            from PIL import Image

            images = [Image.fromarray(im) for im in images]
            out_masks = None if out_masks is None else [Image.fromarray(m) for m in out_masks]
        self.maybe_free_model_hooks()
        if not return_dict:
            return images, out_masks, invalid
        return DefectsynthPipelineOutput(images=images, masks=out_masks, invalid_mask_pixels=invalid)


# -- `defectsynth sample`'s model step ------------------------------------------------------------
def sampling_pipeline(model, run, settings: dict[str, Any]) -> DefectsynthPipeline:
    """The pipeline ``sample`` draws its batches with: ``model`` (loaded, maybe compiled) and the sampler of
    ``settings``."""
    pipe = DefectsynthPipeline(
        unet=model,
        scheduler=train_scheduler(run.args["variance"], scheduler_prediction(run.prediction)),
        run=run_config(run.info),
    )
    if not settings["rescale"]:
        pipe.use_sampler(settings["sampler"], settings["steps"])
    return pipe


def draw_jobs(pipe: DefectsynthPipeline, jobs: list, settings: dict[str, Any], rows: int | None) -> list[tuple]:
    """(image, mask, invalid codes) of each job of ``sample``, seeded by (seed, job index)."""
    from defectsynth.diffusion.denoising import sample_generators

    cond = pipe.config.run["cond"]
    request = {"none": {"batch_size": len(jobs)}, "mask": {"masks": [j.mask for j in jobs]}}.get(
        cond, {"boxes": [j.boxes for j in jobs]}
    )
    out = pipe(
        **request, num_inference_steps=settings["steps"], guidance_scale=settings["guidance"],
        rescale=settings["rescale"], generator=sample_generators(settings["seed"], [j.index for j in jobs]),
        output_type="np", batch_rows=rows, force_guidance=settings.get("force_guidance", False),
    )  # fmt: skip
    masks = [None] * len(jobs) if out.masks is None else list(out.masks)
    return list(zip(list(out.images), masks, out.invalid_mask_pixels))


def register_with_diffusers() -> None:
    """Make ``DiffusionPipeline.from_pretrained`` find the class named in model_index.json: diffusers
    looks pipeline classes up as attributes of its own module (``_get_pipeline_class``)."""
    diffusers = sys.modules["diffusers"]
    if getattr(diffusers, DefectsynthPipeline.__name__, None) is not DefectsynthPipeline:
        setattr(diffusers, DefectsynthPipeline.__name__, DefectsynthPipeline)


register_with_diffusers()
