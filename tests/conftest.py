"""Shared fixtures: small seeded datasets written once per session, never downloaded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from bad_inputs import tree_digest
from typer.testing import CliRunner

from defectsynth.data.prepare import prepare

os.environ["HF_HUB_OFFLINE"] = (
    "1"  # tests never download: a Hub id resolves from the cache or fails (tests/_hub.py fakes the Hub)
)


def _read_only(folder: Path):
    """Yield ``folder`` to the tests of a session; at the end fail if any of them changed a byte in it
    (shared datasets are read-only: a test that writes copies them first)."""
    before = tree_digest(folder)
    yield folder
    assert tree_digest(folder) == before, f"a test changed the shared dataset {folder}: copy it before writing into it"


@pytest.fixture(scope="session")
def toy_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 24-image 32x32 toy dataset (read-only: copy it before changing it)."""
    out = tmp_path_factory.mktemp("data") / "toy"
    prepare("toy", out, num=24, size="32", seed=0)
    yield from _read_only(out)


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 16-image 32x32 toy dataset standing in for synthetic data in the evaluate tests (read-only)."""
    out = tmp_path_factory.mktemp("synth") / "synth"
    prepare("toy", out, num=16, size="32", seed=9)
    yield from _read_only(out)


@pytest.fixture(scope="session")
def data16(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 toy images at 16x16, splits train 5, val 2, test 1: the small dataset of the train, sample,
    fault and multi-process tests (read-only: copy it before changing it)."""
    out = tmp_path_factory.mktemp("d16") / "toy"
    prepare("toy", out, num=8, size="16", seed=1, split_fractions="0.6,0.2,0.2")
    yield from _read_only(out)


@pytest.fixture(scope="session")
def tiny_run(data16: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run trained for 2 steps on ``data16`` (tiny model, cond basd, target joint, EMA; read-only)."""
    from defectsynth.diffusion.training import train

    out = tmp_path_factory.mktemp("runs") / "tiny"
    return train(data16, out=out, model="tiny", batch_size=4, epochs=1, max_steps=2, preview_every=0, progress=False)


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
