"""Analog bits (Chen, Zhang & Hinton, "Analog bits", ICLR 2023), as used by the BASD paper eq. (1).

A class id ``c`` in ``0..C-1`` becomes ``ceil(log2(C))`` bits (at least 1; background counts as a
class), most significant bit first, mapped {0, 1} -> {-1, +1}. Decoding thresholds each bit at 0;
a code >= C (possible in generated masks) decodes to background (0) and is counted.
"""

from __future__ import annotations

import math

import numpy as np


def num_bits(num_classes: int) -> int:
    """Bits needed for ``num_classes`` classes (background included): ceil(log2 C), at least 1."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    return max(1, math.ceil(math.log2(num_classes)))


def encode_bits(ids: np.ndarray, num_classes: int) -> np.ndarray:
    """(...,) integer class ids -> (..., bits) float32 in {-1, +1}, most significant bit first."""
    bits = num_bits(num_classes)
    shifts = np.arange(bits - 1, -1, -1, dtype=np.int64)
    binary = (np.asarray(ids, dtype=np.int64)[..., None] >> shifts) & 1
    return (binary * 2 - 1).astype(np.float32)


def decode_bits(bits: np.ndarray, num_classes: int) -> tuple[np.ndarray, int]:
    """(..., bits) analog values -> ((...,) uint8 class ids, number of codes >= num_classes).

    Values > 0 read as 1. Codes that name no class become background (0).
    """
    bits = np.asarray(bits)
    weights = 1 << np.arange(bits.shape[-1] - 1, -1, -1, dtype=np.int64)
    codes = ((bits > 0).astype(np.int64) * weights).sum(axis=-1)
    invalid = codes >= num_classes
    codes[invalid] = 0
    return codes.astype(np.uint8), int(invalid.sum())
