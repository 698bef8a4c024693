"""The JSON of ``benchmarks/gpu_check.sh``: every stage's status and seconds, its figures, and a summary.

    python benchmarks/gpu_check_report.py STAGES_TSV WORK_DIR OUT_FILE CPU_SMOKE(0|1)

STAGES_TSV has one ``name<TAB>status<TAB>seconds`` line per stage; WORK_DIR holds ``<stage>.json``
(the benchmark's ``--json`` output, where it wrote one) and ``<stage>.log``. Standard library only,
so it runs with any ``python3`` whether or not the project's venv could be built.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def read_stages(tsv: Path, work: Path) -> dict[str, dict]:
    stages = {}
    for line in tsv.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        name, status, seconds = line.split("\t")
        stage = {"status": status, "seconds": int(seconds)}
        result = work / f"{name}.json"
        if result.is_file():
            try:
                stage["result"] = json.loads(result.read_text(encoding="utf-8"))
            except ValueError as err:
                stage["result_error"] = f"{result}: {err}"
        log = work / f"{name}.log"
        if status != "ok" and log.is_file():
            stage["log_tail"] = log.read_text(encoding="utf-8", errors="replace")[-2000:]
        stages[name] = stage
    return stages


def _cuda_mib(result: dict | None) -> float | None:
    return ((result or {}).get("memory") or {}).get("cuda_max_allocated_mib")


def summary(stages: dict[str, dict]) -> dict:
    """The figures the lead reads first: train and sample images/s, peak CUDA memory, fidelity ratios."""
    out: dict = {"env": stages.get("env", {}).get("result")}
    for name in ("train128", "train256"):
        r = stages.get(name, {}).get("result")
        if r:
            out[name] = {
                "size": r["size"],
                "batch_size": r["batch_size"],
                "precision": r.get("mixed_precision_resolved"),
                "images_per_s": {loop: v["images_per_s"] for loop, v in r["loops"].items()},
                "speedup_vs_plain": r.get("speedup"),
                "cuda_max_allocated_mib": _cuda_mib(r),
            }
    r = stages.get("sample", {}).get("result")
    if r:
        out["sample"] = {
            "size": r["size"],
            "steps": r["steps"],
            "images_per_s": {s: v["images_per_s"] for s, v in r["schedulers"].items()},
            "cuda_max_allocated_mib": _cuda_mib(r),
        }
    r = stages.get("fidelity", {}).get("result")
    if r and r.get("status") == "ok":
        tex = r["texture"]
        out["fidelity"] = {
            "size": r["size"],
            "synthetic_only_ratio": r["tstr"]["synthetic_only_ratio"],
            "real_plus_synthetic_ratio": r["tstr"]["real_plus_synthetic_ratio"],
            "miou": {mix: row["miou_mean"] for mix, row in r["tstr"]["mixes"].items()},
            "laplacian_ratio": {reg: tex[reg]["ratio"]["laplacian_var"] for reg in ("image", "boxes")},
            "hf_share_ratio": {reg: tex[reg]["ratio"]["hf_share"] for reg in ("image", "boxes")},
            "sae_test": r["sae_ebr_test"]["sae"],
            "ebr_test": r["sae_ebr_test"]["ebr"],
            "seconds": r["seconds"],
            "cuda_max_allocated_mib": _cuda_mib(r),
        }
    peaks = [
        v["cuda_max_allocated_mib"]
        for v in out.values()
        if isinstance(v, dict) and v.get("cuda_max_allocated_mib") is not None
    ]
    out["peak_cuda_mib"] = max(peaks) if peaks else None
    return out


def main(argv: list[str]) -> None:
    if len(argv) != 4 or argv[3] not in ("0", "1"):
        sys.exit(__doc__.strip().splitlines()[2].strip())
    tsv, work, out, smoke = Path(argv[0]), Path(argv[1]), Path(argv[2]), argv[3] == "1"
    stages = read_stages(tsv, work)
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu_smoke": smoke,
        "ok": all(s["status"] == "ok" or s["status"].startswith("skipped") for s in stages.values()),
        "seconds": sum(s["seconds"] for s in stages.values()),
        "summary": summary(stages),
        "stages": stages,
        "logs": str(work),
    }
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, out)


if __name__ == "__main__":
    main(sys.argv[1:])
