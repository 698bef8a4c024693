"""Encodings of masks and boxes for the diffusion models: analog bits, BASD / C-BASD, boxmask, boxes from masks."""

from defectsynth.encoding.analog_bits import decode_bits, encode_bits, num_bits
from defectsynth.encoding.boxes import CLASS_FILLS, basd_maps, boxmask_maps
from defectsynth.encoding.components import boxes_from_mask

__all__ = ["CLASS_FILLS", "basd_maps", "boxes_from_mask", "boxmask_maps", "decode_bits", "encode_bits", "num_bits"]
