"""The CLI starts without importing torch: `defectsynth --help` and every subcommand's --help stay fast."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CHECK = """
import sys
from typer.testing import CliRunner
from defectsynth.cli import app
assert "torch" not in sys.modules, "import defectsynth.cli imported torch"
for command in [[], *[[name] for name in sys.argv[1:]]]:
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "torch" not in sys.modules, f"defectsynth {' '.join(command)} --help imported torch"
"""


def test_cli_and_help_do_not_import_torch():
    import typer.main

    from defectsynth.cli import app

    names = sorted(c.name for c in typer.main.get_command(app).commands.values())
    env_src = str(Path(__file__).resolve().parents[1] / "src")
    done = subprocess.run(
        [sys.executable, "-c", CHECK, *names],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": env_src, "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_opencv_is_quieted_on_opencv_4_and_5(monkeypatch):
    """OpenCV 5 has cv2.utils.logging; OpenCV 4 (the 4.11 floor) only cv2.setLogLevel with plain numbers."""
    import types

    import cv2

    from defectsynth.cli import _quiet_opencv

    calls = []
    five = types.SimpleNamespace(
        LOG_LEVEL_WARNING=3, LOG_LEVEL_ERROR=2, setLogLevel=lambda level: calls.append(("utils.logging", level))
    )
    monkeypatch.setattr(cv2, "utils", types.SimpleNamespace(logging=five))
    _quiet_opencv(verbose=False)
    _quiet_opencv(verbose=True)
    monkeypatch.setattr(cv2, "utils", types.SimpleNamespace())
    monkeypatch.setattr(cv2, "setLogLevel", lambda level: calls.append(("setLogLevel", level)), raising=False)
    _quiet_opencv(verbose=False)
    _quiet_opencv(verbose=True)
    assert calls == [("utils.logging", 2), ("utils.logging", 3), ("setLogLevel", 2), ("setLogLevel", 3)]
