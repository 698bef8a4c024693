"""The ``push`` stage: :func:`defectsynth.hub.push` itself:
it already holds the command's validation and defaults (the command adds nothing of its own)."""

from defectsynth.hub import push

__all__ = ["push"]
