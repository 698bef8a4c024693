"""Arrays in, tensors out: the numpy entry points of the encoding wrap its torch implementation."""

from __future__ import annotations

import numpy as np
import torch


def as_tensor(value, device=None) -> torch.Tensor:
    """``value`` (tensor, array or nested list) as a tensor on ``device``; CPU arrays are shared, not
    copied, unless they have negative strides (e.g. ``boxes[::-1]``), which torch cannot view."""
    if torch.is_tensor(value):
        return value if device is None else value.to(device)
    array = np.asarray(value)
    if any(stride < 0 for stride in array.strides):
        array = array.copy()
    return torch.as_tensor(array, device=device)
