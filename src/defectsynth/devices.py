"""Choosing the torch device a command runs on, the same way for every command.

``--device`` takes any torch device name (``cpu``, ``cuda``, ``cuda:1``, ``mps``); ``None`` or
``"auto"`` pick ``cuda`` when torch sees a CUDA device, else ``cpu``. A name torch does not know,
or CUDA asked for on a machine without it, is one :class:`~defectsynth.errors.OptionError` line.
(``evaluate`` is the exception: accelerate places each process, see ``evaluation._process_state``.)
"""

from __future__ import annotations

from defectsynth.errors import OptionError

AUTO = "auto"


def pick_device(device: str | None = None) -> str:
    """The checked torch device name for ``device`` (None / "auto": cuda when available, else cpu)."""
    import torch

    if device is None or device == AUTO:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(device).type
    except RuntimeError:
        raise OptionError(f"--device: {device!r} is not a torch device (auto, cpu, cuda, cuda:1, mps)") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise OptionError(f"--device: {device!r} asked for, but torch sees no CUDA device here")
    return device
