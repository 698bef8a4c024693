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
