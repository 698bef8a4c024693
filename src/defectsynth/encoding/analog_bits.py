"""Analog bits (Chen, Zhang & Hinton, "Analog bits", ICLR 2023), as used by the BASD paper eq. (1).

A class id ``c`` in ``0..C-1`` becomes ``ceil(log2(C))`` bits (at least 1; background counts as a
class), most significant bit first, mapped {0, 1} -> {-1, +1}. Decoding thresholds each bit at 0;
a code >= C (possible in generated masks) decodes to background (0) and is counted, so callers can
report it. C may be at most 256 (class ids are uint8).

The torch functions are the implementation; the numpy functions wrap them (zero-copy on the CPU).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from defectsynth.encoding._tensors import as_tensor

MAX_CLASSES = 256


def num_bits(num_classes: int) -> int:
    """Bits needed for ``num_classes`` classes (background included): ceil(log2 C), at least 1."""
    if not 1 <= num_classes <= MAX_CLASSES:
        raise ValueError(f"num_classes must lie in 1..{MAX_CLASSES}, got {num_classes}")
    return max(1, math.ceil(math.log2(num_classes)))


def encode_bits_torch(ids: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(...,) integer class ids -> (..., bits) float32 in {-1, +1}, most significant bit first."""
    bits = num_bits(num_classes)
    shifts = torch.arange(bits - 1, -1, -1, device=ids.device)
    binary = (ids.to(torch.int64)[..., None] >> shifts) & 1
    return (binary * 2 - 1).to(torch.float32)


def decode_bits_torch(bits: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, int]:
    """(..., bits) analog values -> ((...,) uint8 class ids, number of codes >= num_classes).

    Values > 0 read as 1. Codes that name no class become background (0).
    """
    num_bits(num_classes)  # validates num_classes
    weights = 1 << torch.arange(bits.shape[-1] - 1, -1, -1, device=bits.device)
    codes = ((bits > 0).to(torch.int64) * weights).sum(dim=-1)
    invalid = codes >= num_classes
    codes = torch.where(invalid, 0, codes)
    return codes.to(torch.uint8), int(invalid.sum())


def encode_bits(ids: np.ndarray, num_classes: int) -> np.ndarray:
    """(...,) integer class ids -> (..., bits) float32 in {-1, +1}, most significant bit first."""
    return encode_bits_torch(as_tensor(ids), num_classes).numpy()


def decode_bits(bits: np.ndarray, num_classes: int) -> tuple[np.ndarray, int]:
    """(..., bits) analog values -> ((...,) uint8 class ids, number of codes >= num_classes).

    Values > 0 read as 1. Codes that name no class become background (0).
    """
    ids, invalid = decode_bits_torch(as_tensor(bits), num_classes)
    return ids.numpy(), invalid
