"""Encodings of masks and boxes for the diffusion models: analog bits, BASD / C-BASD, boxmask, boxes from masks.

Every function has a numpy form (used by previews, metrics and the ``encode-boxes`` cache) and a
torch form (``*_torch``: training and sampling, on any device); the numpy forms wrap the torch ones.
"""

from defectsynth.encoding.components import boxes_from_mask  # numpy + OpenCV only

# The torch-based encodings load on first use, so that importing the package (the CLI, `prepare`)
# does not import torch (2-4 s).
_LAZY = {
    "decode_bits": "analog_bits",
    "decode_bits_torch": "analog_bits",
    "encode_bits": "analog_bits",
    "encode_bits_torch": "analog_bits",
    "num_bits": "analog_bits",
    "CLASS_FILLS": "boxes",
    "CONDITIONS": "boxes",
    "basd_maps": "boxes",
    "basd_maps_torch": "boxes",
    "boxmask_maps": "boxes",
    "boxmask_maps_torch": "boxes",
    "condition_channels": "boxes",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"defectsynth.encoding.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'defectsynth.encoding' has no attribute {name!r}")


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
