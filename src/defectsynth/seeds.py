"""Seeds derived from integers, so a result depends on (seed, index, ...) and not on batch size,
process count or interruptions."""

from __future__ import annotations

import numpy as np


def derived_seed(*parts: int) -> int:
    """A 63-bit seed from integers (NumPy's SeedSequence), stable across platforms."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0] >> np.uint64(1))
