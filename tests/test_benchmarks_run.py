"""benchmarks/run.py end to end on its cheapest benchmark: JSON and table written, the rest marked skipped."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_run_writes_results_json_and_table(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--only", "filter_balance", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["quick"] and results["device"]["cpu"] and results["device"]["cpu_count"] >= 1
    row = results["benchmarks"]["filter_balance"]
    assert row["status"] == "ok" and row["result"]["box_checks_masks_per_s"] > 0 and row["peak_rss_mib"] > 0
    assert row["result"]["memory"]["peak_rss_mib"] > 0
    assert results["benchmarks"]["box_fidelity"]["status"] == "skipped in --quick"
    assert results["benchmarks"]["train_throughput"]["status"] == "skipped"
    table = (tmp_path / "results.md").read_text()
    assert "| filter_balance | ok |" in table and results["device"]["cpu"] in table
