"""The ``metrics`` stage: :func:`defectsynth.metrics.compute.compute_metrics` itself:
it already holds the command's validation and defaults (the command adds nothing of its own)."""

from defectsynth.metrics.compute import compute_metrics

__all__ = ["compute_metrics"]
