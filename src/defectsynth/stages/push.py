"""The ``push`` stage: :func:`defectsynth.hub_push.push` itself:
it already holds the command's validation and defaults (the command adds nothing of its own)."""

from defectsynth.hub_push import push

__all__ = ["push"]
