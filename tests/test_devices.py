"""One device choice for every command: auto/None, a checked name, one-line errors."""

from __future__ import annotations

from unittest import mock

import pytest

from defectsynth.devices import pick_device
from defectsynth.errors import OptionError


def test_auto_and_none_follow_cuda_availability():
    with mock.patch("torch.cuda.is_available", return_value=False):
        assert pick_device(None) == pick_device("auto") == "cpu"
    with mock.patch("torch.cuda.is_available", return_value=True):
        assert pick_device(None) == pick_device("auto") == "cuda"
        assert pick_device("cuda:1") == "cuda:1"


def test_names_are_checked():
    assert pick_device("cpu") == "cpu"
    with pytest.raises(OptionError, match="'gpu0' is not a torch device"):
        pick_device("gpu0")
    with mock.patch("torch.cuda.is_available", return_value=False), pytest.raises(OptionError, match="no CUDA device"):
        pick_device("cuda:7")
