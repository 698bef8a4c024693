"""The ``encode-boxes`` stage: :func:`defectsynth.encoding.conditions.encode_boxes` itself:
it already holds the command's validation and defaults (the command adds nothing of its own)."""

from defectsynth.encoding.conditions import encode_boxes

__all__ = ["encode_boxes"]
