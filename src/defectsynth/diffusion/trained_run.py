"""A trained run opened for sampling: its run.json (:mod:`defectsynth.formats.run`), network,
autoencoder and the sampling defaults it implies."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from defectsynth.data.model import ClassInfo
from defectsynth.diffusion.losses import recipe_prediction
from defectsynth.diffusion.models import Layout
from defectsynth.diffusion.schedules import DEFAULT_SCHEDULER, DEFAULT_STEPS, RESCALE_MIN_STEPS
from defectsynth.errors import DatasetError
from defectsynth.formats.run import read_run_folder, weights_folder
from defectsynth.hub import resolve_run


@dataclass
class Run:
    """A trained run folder: run.json and its network."""

    root: Path
    info: dict[str, Any]

    @classmethod
    def open(cls, root: str | Path) -> "Run":
        root = resolve_run(root)  # a Hub id (owner/name): its cached download
        return cls(root, read_run_folder(root))

    @property
    def args(self) -> dict[str, Any]:
        return self.info["args"]

    @property
    def prediction(self) -> str | tuple[str, ...]:
        """What the network predicts: epsilon (runs before the option existed), sample or v, or one
        of them per target channel (:func:`~defectsynth.diffusion.losses.recipe_prediction`)."""
        return recipe_prediction(self.args, self.layout)

    @property
    def layout(self) -> Layout:
        return Layout(**self.info["layout"])

    @property
    def classes(self) -> list[ClassInfo]:
        return [ClassInfo(c["id"], c["name"], tuple(c["color"])) for c in self.info["classes"]]

    def load_autoencoder(self):
        """The run's autoencoder (``--latent``) or None."""
        if not self.info.get("latent"):
            return None
        from defectsynth.diffusion.latent import Autoencoder

        return Autoencoder.load(self.info["latent"]["path"])

    def load_unet(self, ema: bool = True):
        from defectsynth.diffusion.models import load_network

        folder = weights_folder(self.root, ema)
        if not (folder / "config.json").is_file():
            raise DatasetError("the run has no weights yet (unet/ appears after its first epoch)", self.root)
        return load_network(folder).eval().requires_grad_(False)


def paints_into_images(run: Run, onto) -> bool:
    """Whether sampling paints into given images (``--onto``, or a context run):
    :mod:`~defectsynth.diffusion.inpaint`."""
    return onto is not None or bool(run.args.get("context"))


def default_scheduler(run: Run, onto=None, rescale: bool | None = None) -> str:
    """The sampler of a run when ``--scheduler`` is left out.

    DPM-Solver++ (20 steps) for box-guided and unconditional runs: the fastest sampler measured
    within 1 point of DDPM 1000 steps on SAE and EBR (CrackForest, docs/benchmarks.md "Sampler
    quality"). DDPM for mask-conditioned runs (ISDM's 300 rescaled steps, :func:`run_defaults`) and
    for painting into images (``--onto``, context runs), which were not part of that measurement, and
    whenever ``rescale`` is asked for (ISDM's rescaled schedule is a DDPM one).
    """
    if rescale or run.args["cond"] == "mask" or paints_into_images(run, onto):
        return "ddpm"
    return DEFAULT_SCHEDULER


def run_defaults(
    run: Run, scheduler: str, steps: int | None, rescale: bool | None, guidance: float | None
) -> tuple[int | None, bool, float]:
    """(steps, rescale, guidance) with the left-out (None) ones filled in.

    A mask-conditioned run (ISDM) with the ddpm scheduler: ``--steps 300 --rescale``, and guidance
    1.5 when it was trained (or finetuned) with a drop rate; every other run: the scheduler's
    default steps, no rescale, guidance 1.0. Rescaling is not the default for a step count too small
    for it (``RESCALE_MIN_STEPS`` or fewer): such runs use the respaced schedule instead.
    """
    isdm = run.args["cond"] == "mask"
    if steps is None and isdm and scheduler == "ddpm":
        steps = 300
    if rescale is None:
        rescale = isdm and scheduler == "ddpm" and (steps or DEFAULT_STEPS[scheduler]) > RESCALE_MIN_STEPS
    if guidance is None:
        guidance = 1.5 if isdm and run.args.get("drop_rate") else 1.0
    return steps, rescale, guidance
