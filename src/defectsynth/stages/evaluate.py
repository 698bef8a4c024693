"""The ``evaluate`` stage: :func:`defectsynth.evaluation.evaluate` itself:
it already holds the command's validation and defaults (the command adds nothing of its own)."""

from defectsynth.evaluation import evaluate

__all__ = ["evaluate"]
