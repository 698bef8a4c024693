"""Shared fixtures: small seeded datasets written once per session, never downloaded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from defectsynth.data.prepare import prepare

os.environ["HF_HUB_OFFLINE"] = "1"  # tests never download: a Hub id resolves from the cache or fails (tests/_hub.py fakes the Hub)


@pytest.fixture(scope="session")
def toy_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 24-image 32x32 toy dataset (read-only: copy it before changing it)."""
    out = tmp_path_factory.mktemp("data") / "toy"
    prepare("toy", out, num=24, size="32", seed=0)
    return out


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 16-image 32x32 toy dataset standing in for synthetic data in the evaluate tests (read-only)."""
    out = tmp_path_factory.mktemp("synth") / "synth"
    prepare("toy", out, num=16, size="32", seed=9)
    return out


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture(scope="module")
def one_thread():
    """torch on one thread for a module: tiny networks train several times faster than on a shared,
    busy CPU, and in-process runs then compute like subprocesses started with OMP_NUM_THREADS=1."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
