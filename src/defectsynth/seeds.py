"""Seeds derived from other seeds: one rule for every random stream that must not depend on batching,
process count or resumption (a sample's noise, an epoch's shuffle, an evaluation cell's weights)."""

from __future__ import annotations

import numpy as np


def derived_seed(*parts: int, bits: int = 63) -> int:
    """A seed from integers (NumPy's SeedSequence of ``parts``), stable across platforms and versions.

    bits: 63 (the default, for torch generators): the top 63 bits of the first 64-bit word of state;
    31: its low 31 bits (the evaluation cells' seeds, which must fit any seeding API).
    """
    word = np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint64)[0]
    if bits == 63:
        return int(word >> np.uint64(1))
    if bits == 31:
        return int(word & np.uint64(0x7FFFFFFF))
    raise ValueError(f"bits: 63 or 31, got {bits}")
