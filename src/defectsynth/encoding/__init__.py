"""Encodings of masks and boxes for the diffusion models: analog bits, BASD / C-BASD, boxmask, boxes from masks.

Every function has a numpy form (used by previews, metrics and the ``encode-boxes`` cache) and a
torch form (``*_torch``: training and sampling, on any device); the numpy forms wrap the torch ones.
"""

from defectsynth.encoding.analog_bits import decode_bits, decode_bits_torch, encode_bits, encode_bits_torch, num_bits
from defectsynth.encoding.boxes import (
    CLASS_FILLS,
    CONDITIONS,
    basd_maps,
    basd_maps_torch,
    boxmask_maps,
    boxmask_maps_torch,
    condition_channels,
)
from defectsynth.encoding.components import boxes_from_mask

__all__ = [
    "CLASS_FILLS",
    "CONDITIONS",
    "basd_maps",
    "basd_maps_torch",
    "boxes_from_mask",
    "boxmask_maps",
    "boxmask_maps_torch",
    "condition_channels",
    "decode_bits",
    "decode_bits_torch",
    "encode_bits",
    "encode_bits_torch",
    "num_bits",
]
