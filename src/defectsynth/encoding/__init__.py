"""Encodings of masks and boxes for the diffusion models: analog bits, BASD / C-BASD, boxmask, boxes from masks."""

from defectsynth.encoding.components import boxes_from_mask

__all__ = ["boxes_from_mask"]
