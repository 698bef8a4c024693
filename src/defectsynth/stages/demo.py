"""The ``demo`` stage: :func:`defectsynth.toy_demo.demo` itself:
it already holds the command's validation and defaults (the command adds nothing of its own)."""

from defectsynth.toy_demo import demo

__all__ = ["demo"]
