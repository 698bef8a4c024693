"""One writer per output (issue 23): every command that writes a folder holds its lock, a second
writer is refused with the holder's pid and host, and a killed run's partial folder is removed by
the next run of the same command on the same output (only when its marker proves it is that run's)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from defectsynth.cli import app
from defectsynth.data.files import PARTIAL_MARKER, partial_dir
from defectsynth.diffusion.training import train
from defectsynth.locks import output_lock

SRC = Path(__file__).parents[1] / "src"
TINY = ["--model", "tiny", "--batch-size", "2", "--preview-every", "0", "--no-progress"]


@pytest.fixture(scope="module")
def synth(data16, tmp_path_factory) -> Path:
    """The toy dataset under other stems (``s-<stem>``), to merge with it."""
    out = tmp_path_factory.mktemp("locks") / "synth"
    shutil.copytree(data16, out)
    shutil.rmtree(out / "splits")
    for sub in ("images", "masks", "boxes"):
        for path in (out / sub).iterdir():
            path.rename(path.with_name(f"s-{path.name}"))
    return out


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _one_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


@pytest.mark.slow
def test_a_second_train_on_one_run_folder_is_refused_and_the_first_is_unharmed(data16, tmp_path, one_thread):
    run = tmp_path / "run"
    args = [
        str(data16),
        "--out",
        str(run),
        *TINY,
        "--epochs",
        "100",
        "--max-steps",
        "12",
        "--checkpoint-every",
        "2",
        "--mixed-precision",
        "no",
    ]
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    first = subprocess.Popen(
        [sys.executable, "-m", "defectsynth", "train", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 300
    while not (run / "run.json").is_file():  # the first has checked the folder and started writing
        assert first.poll() is None and time.monotonic() < deadline, first.stderr.read().decode()
        time.sleep(0.05)
    # the second, with --resume: without the lock it would take the half-written run over
    line = _one_line(CliRunner().invoke(app, ["train", *args, "--resume"]))
    assert line == (
        f"error: {run}: is being written by another process (train, pid {first.pid} on host "
        f"{socket.gethostname()}): wait for it to finish or stop it"
    )
    assert first.wait(timeout=600) == 0, first.stderr.read().decode()
    first.stderr.close()
    reference = train(
        data16,
        out=tmp_path / "alone",
        model="tiny",
        batch_size=2,
        preview_every=0,
        epochs=100,
        max_steps=12,
        checkpoint_every=2,
        mixed_precision="no",
    )
    for name in ("unet", "unet_ema", "checkpoint-12"):
        mine, theirs = _digest(run / name), _digest(reference / name)
        assert {k: v for k, v in mine.items() if k != "trainer.json"} == {
            k: v for k, v in theirs.items() if k != "trainer.json"
        }, name
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["alone", "run"]
    assert not (tmp_path / ".run.lock.json").exists()  # the holder file goes with the lock


def _commands(ws: Path, data16: Path, synth: Path) -> dict[str, list[str]]:
    out = str(ws / "out")
    return {
        "prepare": ["prepare", "toy", "--num", "4", "--size", "16", "--out", out, "--no-progress"],
        "filter": ["filter", str(data16), "--out", out, "--by", "boxes", "--clip-labels", "--no-progress"],
        "balance": ["balance", str(data16), "--with", str(synth), "--out", out, "--no-progress"],
        "evaluate": [
            "evaluate",
            "--real",
            str(data16),
            "--out",
            out,
            "--models",
            "unet",
            "--encoder-weights",
            "none",
            "--no-progress",
        ],
        "demo": ["demo", "--quick", "--out", out, "--no-progress"],
        "train": ["train", str(data16), "--out", out, *TINY],
        "encode-boxes": ["encode-boxes", out, "--no-progress"],
    }


@pytest.mark.parametrize("command", ["prepare", "filter", "balance", "evaluate", "demo", "train", "encode-boxes"])
def test_every_writing_command_is_refused_while_another_holds_its_output(data16, synth, tmp_path, command):
    args = _commands(tmp_path, data16, synth)[command]
    with output_lock(
        tmp_path / "out", "sample"
    ):  # held by this process: the command opens the lock anew, like another process
        line = _one_line(CliRunner().invoke(app, args))
        assert f"{tmp_path / 'out'}: is being written by another process (sample, pid {os.getpid()} on host " in line
        assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != ".out.lock") == []


# -- stale partial folders --------------------------------------------------------------------------
def _fake_partial(out: Path, command: str | None) -> Path:
    """What a run of ``command`` killed mid-way leaves beside ``out`` (no marker: None)."""
    folder = partial_dir(out, command)
    (folder / "images").mkdir()
    (folder / "images" / "a.png").write_bytes(b"\x89PNG half")
    return folder


@pytest.mark.parametrize("command", ["prepare", "filter", "balance"])
def test_the_next_run_removes_the_partial_folders_its_command_left_and_only_those(data16, synth, tmp_path, command):
    out = tmp_path / "out"
    mine = [_fake_partial(out, command) for _ in range(2)]
    other = _fake_partial(out, "sample")
    unmarked = _fake_partial(out, None)
    elsewhere = _fake_partial(tmp_path / "other", command)
    (tmp_path / ".out.partial-moved").mkdir()  # beside out, but its marker names another target
    (tmp_path / ".out.partial-moved" / PARTIAL_MARKER).write_text(
        json.dumps({"command": command, "target": str((tmp_path / "other").resolve())})
    )
    result = CliRunner().invoke(app, _commands(tmp_path, data16, synth)[command])
    assert result.exit_code == 0, result.output
    assert not any(p.exists() for p in mine)
    assert other.is_dir() and unmarked.is_dir() and elsewhere.is_dir() and (tmp_path / ".out.partial-moved").is_dir()
    assert not (out / PARTIAL_MARKER).exists()  # the marker never reaches the output
