"""The ``export`` stage: :func:`defectsynth.data.export.export` itself:
it already holds the command's validation and defaults (the command adds nothing of its own)."""

from defectsynth.data.export import export

__all__ = ["export"]
