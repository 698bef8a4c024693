"""The ``train`` stage: :func:`defectsynth.diffusion.training.train` itself:
it already holds the command's validation and defaults (the command adds nothing of its own)."""

from defectsynth.diffusion.training import train

__all__ = ["train"]
