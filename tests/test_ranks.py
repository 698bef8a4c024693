"""Failures of one process seen by all (issue 23): two CPU processes under ``accelerate launch``, a
fault injected on process 1 only (a non-finite loss, an exception, a full disk); both processes
must stop with the same one-line error and exit code 2, none left waiting for the other.

Each process runs a small launcher script that patches the fault in, sends its stderr to its own
file and, after the command returned, meets the other process once more (a barrier) before it
exits, so the launcher cannot stop one process before it has reported how it ended.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from _launch import two_cpu_processes

SCRIPT = r"""
import errno, json, os, sys

rank = int(os.environ["RANK"])
folder, fault, args = sys.argv[1], sys.argv[2], sys.argv[3:]
err = open(os.path.join(folder, f"rank{rank}.err"), "w")
os.dup2(err.fileno(), 2)

from defectsynth.diffusion import checkpoint, sampling, training

if rank == 1 and fault == "nan":
    real_loss, calls = training.diffusion_loss, []
    def loss(*a, **k):  # finite for 2 steps, then NaN on this process only
        calls.append(1)
        value = real_loss(*a, **k)
        return value if len(calls) <= 2 else value * float("nan")
    training.diffusion_loss = loss
if rank == 1 and fault in ("exception", "disk-full"):
    def write_process_state(folder, rank):
        if fault == "disk-full":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder))
        raise RuntimeError("injected on process 1")
    checkpoint.write_process_state = write_process_state
if rank == 1 and fault == "sample-disk-full":
    def write_batch(out, args, batch, decoded):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(out / "images" / f"{batch[0].stem}.png"))
    sampling.write_batch = write_batch

from defectsynth.cli import app

try:
    app(args, prog_name="defectsynth")
    code = 0
except SystemExit as stop:
    code = stop.code
import torch.distributed as dist

if dist.is_initialized():
    dist.barrier()
json.dump({"code": code}, open(os.path.join(folder, f"rank{rank}.json"), "w"))
sys.exit(code)
"""

TRAIN = [
    "--model",
    "tiny",
    "--batch-size",
    "2",
    "--epochs",
    "100",
    "--max-steps",
    "4",
    "--checkpoint-every",
    "2",
    "--preview-every",
    "0",
    "--mixed-precision",
    "no",
    "--no-progress",
]


def _launch(tmp_path: Path, fault: str, args: list[str]) -> list[str]:
    """Run ``defectsynth ARGS`` on two CPU processes with ``fault`` on process 1; returns each
    process's one error line after checking that both exited with code 2."""
    script = tmp_path / "launch_one.py"
    script.write_text(SCRIPT)
    launch, env = two_cpu_processes(COLUMNS="300")
    launch = [*launch, str(script), str(tmp_path), fault]
    done = subprocess.run([*launch, *args], capture_output=True, env=env, timeout=300)
    lines = []
    for rank in (0, 1):
        report = tmp_path / f"rank{rank}.json"
        stderr = (tmp_path / f"rank{rank}.err").read_text()
        assert report.is_file(), f"process {rank} did not end by itself: {stderr}\n{done.stderr.decode()[-3000:]}"
        shown = [line for line in stderr.splitlines() if line.strip()]
        assert json.loads(report.read_text())["code"] == 2 and len(shown) == 1 and "Traceback" not in stderr, (
            rank,
            stderr,
        )
        lines.append(shown[0])
    assert done.returncode != 0
    return lines


@pytest.mark.slow
def test_a_non_finite_loss_on_one_process_stops_both_at_the_same_step(data16, tmp_path):
    run = tmp_path / "run"
    line0, line1 = _launch(tmp_path, "nan", ["train", str(data16), "--out", str(run), *TRAIN])
    assert line0 == line1 and "step 3: the training loss is nan (not finite)" in line0 and "checkpoint-2/" in line0, (
        line0
    )


@pytest.mark.slow
def test_an_exception_on_one_process_stops_both_with_its_line(data16, tmp_path):
    line0, line1 = _launch(tmp_path, "exception", ["train", str(data16), "--out", str(tmp_path / "run"), *TRAIN])
    assert line0 == line1 == "error: process 1 failed: RuntimeError: injected on process 1", line0


@pytest.mark.slow
def test_a_full_disk_on_one_process_stops_both_and_keeps_what_was_saved(data16, tmp_path):
    run = tmp_path / "run"
    line0, line1 = _launch(tmp_path, "disk-full", ["train", str(data16), "--out", str(run), *TRAIN])
    assert (
        line0 == line1 and f"{run}: cannot write checkpoint-2 (No space left on device); training stopped" in line0
    ), line0
    assert not list(run.glob(".checkpoint-*")) and not list(run.glob("checkpoint-*"))  # no half checkpoint


@pytest.mark.slow
def test_a_full_disk_while_sampling_on_one_process_stops_both(data16, tmp_path):
    from defectsynth.diffusion.training import train

    run = train(data16, out=tmp_path / "run", model="tiny", batch_size=2, epochs=1, preview_every=0)
    out = tmp_path / "synth"
    line0, line1 = _launch(
        tmp_path,
        "sample-disk-full",
        [
            "sample",
            str(run),
            "--out",
            str(out),
            "--num",
            "4",
            "--scheduler",
            "ddim",
            "--steps",
            "2",
            "--batch-size",
            "1",
            "--no-progress",
        ],
    )
    assert line0 == line1 and f"{out}: cannot write a sample" in line0 and "(No space left on device)" in line0, line0
    assert not (out / "dataset.json").exists()
