"""The ``prepare`` stage: :func:`defectsynth.data.prepare.prepare` itself:
it already holds the command's validation and defaults (the command adds nothing of its own)."""

from defectsynth.data.prepare import prepare

__all__ = ["prepare"]
