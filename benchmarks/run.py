"""Run every benchmark of this folder and write ``results.json`` and a Markdown table ``results.md``.

Each benchmark runs as its own subprocess with ``--json FILE`` (its figures, plus its peak resident
memory and, on a GPU, torch's peak CUDA allocation); this script adds the wall time, the peak RSS
the kernel reports for the process (``wait4``), the machine (CPU model or GPU name, cores, load
average before and after) and versions, then renders the table.

    python benchmarks/run.py [--quick] [--only train_throughput,sample_throughput] [--out benchmarks]

``--quick`` (under 10 minutes on an idle 2-core CPU) shrinks every benchmark and skips the long
quality studies box_fidelity, mask_fidelity and time_to_quality; sampler_quality keeps all six
sampler settings on one model trained for 400 steps but samples 8 test images instead of the
whole test split, and evaluate_toy trains its diffusion model for 50 steps and one U-Net for one epoch on 40 images;
fidelity runs on the toy (48 images, 40 training steps, checkpoints at 20 and 40) instead of CrackForest,
and inpaint on the toy (48 images at 64 px, 32 px windows, 60 training steps).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"

# name -> (full arguments, --quick arguments or None = skipped in --quick)
BENCHMARKS: dict[str, tuple[list[str], list[str] | None]] = {
    "prepare": ([], ["--num", "8"]),
    "encode_boxes": ([], ["--maps", "50", "--repeats", "3", "--literal-maps", "1"]),
    "metrics_sae_ebr": ([], ["--num", "200"]),
    "filter_balance": ([], ["--images", "2000", "--pool", "500", "--masks", "100"]),
    "sd_priors": ([], ["--size", "256", "--repeats", "2"]),
    "network_step": ([], ["--steps", "5", "--repeats", "2", "--switches", "float32,bf16,bf16+f32attn,channels-last"]),
    "train_throughput": (["--repeats", "3"], ["--steps", "15", "--repeats", "2"]),
    "sample_throughput": ([], ["--num", "32", "--steps", "10"]),
    "sampler_quality": ([], ["--num", "8"]),
    "evaluate_toy": (
        [],
        [
            "--num",
            "40",
            "--size",
            "32",
            "--train-steps",
            "50",
            "--models",
            "unet",
            "--epochs",
            "1",
            "--repeats",
            "1",
            "--mix",
            "R=all,S=0",
            "--mix",
            "R=all,S=R",
        ],
    ),
    "box_fidelity": ([], None),
    "mask_fidelity": ([], None),
    "time_to_quality": (
        ["--recipes", "plain,sample+selfcond+maskw4", "--steps", "400", "--every", "200", "--jobs", "2"],
        None,
    ),
    # CrackForest when present (skips with exit 0 otherwise); --quick on the toy
    "fidelity": (["--size", "64", "--train-steps", "1200", "--every", "400"], ["--toy", "--quick"]),
    # CrackForest at native resolution when present (skips with exit 0 otherwise); --quick on the toy
    "inpaint": ([], ["--quick"]),
}
WORK_FOLDER = {
    "box_fidelity",
    "mask_fidelity",
    "time_to_quality",
    "fidelity",
    "inpaint",
}  # take --out DIR (default: a folder in the current directory)


def device() -> dict:
    """The machine: CPU model, cores, GPU name where CUDA is available, versions."""
    cpu = platform.processor() or "unknown CPU"
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    info = {"cpu": cpu, "cpu_count": os.cpu_count(), "gpu": None, "python": platform.python_version()}
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def run_one(name: str, args: list[str], work: Path, timeout: float | None) -> dict:
    """Run ``benchmarks/<name>.py`` with ``args``; returns status, seconds, peak RSS, its JSON and its output."""
    out_json, log = work / f"{name}.json", work / f"{name}.log"
    extra = ["--out", str(work / name)] if name in WORK_FOLDER else []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    started = time.perf_counter()
    with open(log, "w", encoding="utf-8") as handle:
        process = subprocess.Popen(
            [sys.executable, str(HERE / f"{name}.py"), *args, *extra, "--json", str(out_json)],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env,
        )
        status, usage = _wait(process, timeout)
    seconds = time.perf_counter() - started
    row = {
        "status": status,
        "seconds": round(seconds, 1),
        "args": args,
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1) if usage else None,
    }
    if status == "ok" and out_json.is_file():
        row["result"] = json.loads(out_json.read_text(encoding="utf-8"))
    elif status == "ok":
        row["status"] = "no result"
    row["output"] = log.read_text(encoding="utf-8", errors="replace")[-4000:]
    return row


def _wait(process: subprocess.Popen, timeout: float | None):
    """(status, resource usage of the child) once it ends or is killed at ``timeout`` seconds."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        pid, code, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(code)
            return ("ok" if process.returncode == 0 else f"failed (exit {process.returncode})"), usage
        if deadline is not None and time.monotonic() > deadline:
            process.kill()
            _, code, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(code)
            return f"timed out after {timeout:.0f} s", usage
        time.sleep(0.2)


# -- the table ------------------------------------------------------------------------------------
def _n(value, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and value != value:
        return "nan"
    return f"{value:,.{digits}f}"


def markdown(results: dict) -> str:
    """The results as Markdown: machine, speed and memory, sampler quality, benchmark status."""
    d, b = results["device"], results["benchmarks"]
    r = {name: row.get("result") or {} for name, row in b.items()}
    lines = [
        f"# Benchmark results ({'quick' if results['quick'] else 'full'} run, {results['date']})",
        "",
        f"Machine: {d['gpu'] or d['cpu']} ({d['cpu_count']} CPU cores{', CPU ' + d['cpu'] if d['gpu'] else ''}), "
        f"torch {d.get('torch')}, {d.get('torch_threads')} torch threads; load average {results['load_before']} "
        "before, "
        f"{results['load_after']} after. Total {results['seconds']:.0f} s.",
        "",
        "| what | figure |",
        "|---|---|",
    ]
    rows: list[tuple[str, str]] = []
    if r["encode_boxes"]:
        rows.append(
            (
                "encode: BASD + C-BASD maps/s (256x256, 10 boxes, 1 thread, best)",
                _n(r["encode_boxes"]["maps_per_s"]["basd_maps (inside)"]["best"], 0),
            )
        )
    if r["prepare"]:
        rows.append(
            (
                f"prepare lemons: images/s (1056 px JPEG -> {r['prepare']['size']} px)",
                _n(r["prepare"]["prepare_images_per_s"]),
            )
        )
    if r["metrics_sae_ebr"]:
        rows.append(
            (
                "SAE + EBR: seconds per 1000 images from a folder (256 px)",
                _n(r["metrics_sae_ebr"]["seconds_per_1000_folder"], 2),
            )
        )
    ns = r.get("network_step")
    if ns:
        for name, switch in ns["switches"].items():
            rows.append(
                (
                    f"network step {ns['model']} {ns['size']} px batch {ns['batch_size']} (forward + backward "
                    f"+ AdamW): {name}, ms (x vs {ns['baseline']})",
                    f"{_n(switch['ms_per_step'], 0)} (x{_n(switch['speedup'], 2)})",
                )
            )
    tt = r["train_throughput"]
    if tt:
        for name, loop in tt["loops"].items():
            rows.append(
                (
                    f"train {tt['model']} {tt['size']} px batch {tt['batch_size']}: {name}, images/s (per CPU s)",
                    f"{_n(loop['images_per_s'])} ({_n(loop['images_per_cpu_s'])})",
                )
            )
        precision = tt.get("mixed_precision_resolved", tt.get("mixed_precision"))
        rows.append(
            (
                f"train: defectsynth ({precision}) / plain loop (wall; CPU time)",
                f"x{_n(tt['speedup'], 2)}; x{_n(tt['speedup_cpu'], 2)}",
            )
        )
        if "speedup_float32" in tt:
            rows.append(
                (
                    "train: defectsynth float32 / plain loop (wall; CPU time)",
                    f"x{_n(tt['speedup_float32'], 2)}; x{_n(tt['speedup_float32_cpu'], 2)}",
                )
            )
        rows.append(
            (
                "train: peak memory (RSS MiB; CUDA MiB)",
                f"{_n(b['train_throughput']['peak_rss_mib'], 0)}; {_n(tt['memory']['cuda_max_allocated_mib'], 0)}",
            )
        )
    st = r["sample_throughput"]
    if st:
        for name, s in st["schedulers"].items():
            rows.append(
                (
                    f"sample {st['model']} {st['size']} px, {name} {st['steps']} steps: images/s, time outside "
                    "the network",
                    f"{_n(s['images_per_s'], 2)}, {100 * s['outside_network_share']:.1f}%",
                )
            )
        rows.append(
            (
                "sample: peak memory (RSS MiB; CUDA MiB)",
                f"{_n(b['sample_throughput']['peak_rss_mib'], 0)}; {_n(st['memory']['cuda_max_allocated_mib'], 0)}",
            )
        )
    if r["evaluate_toy"]:
        rows.append(
            ("evaluate (toy): seconds per (model, mix, repeat) cell", _n(r["evaluate_toy"]["seconds_per_cell"]))
        )
    fi = r.get("fidelity")
    if fi and fi.get("status") == "ok":
        t, tex = fi["tstr"], fi["texture"]["image"]["ratio"]
        rows.append(
            (
                f"fidelity ({fi['name']}, {fi['size']} px): mIoU synthetic-only / real-only; real+synthetic / "
                "real-only",
                f"{_n(t['synthetic_only_ratio'], 3)}; {_n(t['real_plus_synthetic_ratio'], 3)}",
            )
        )
        rows.append(
            (
                "fidelity: Laplacian variance, high-frequency share synthetic / real (whole images); EBR on "
                "the test boxes",
                f"{_n(tex['laplacian_var'], 3)}, {_n(tex['hf_share'], 3)}; {_n(fi['sae_ebr_test']['ebr'], 3)}",
            )
        )
    lines += [f"| {k} | {v} |" for k, v in rows]
    sq = r["sampler_quality"]
    if sq:
        lines += [
            "",
            f"Sampler quality: one {sq['model']} model, {sq['size']} px, default recipe, {sq['train']['steps']} "
            "training steps "
            f"({sq['train']['seconds']:.0f} s); {sq['num']} toy test images (SAE, EBR lower is better; IoU vs the "
            "real test masks)",
            "",
            "| sampler | SAE | EBR | mask IoU | seconds | CPU s |",
            "|---|---|---|---|---|---|",
        ]
        for name, s in sq["settings"].items():
            lines.append(
                f"| {name} | {_n(s['sae'], 3)} | {_n(s['ebr'], 3)} | {_n(s['iou'], 3)} | {_n(s['seconds'])} | "
                f"{_n(s['cpu_seconds'])} |"
            )
    lines += ["", "| benchmark | status | seconds | peak RSS MiB |", "|---|---|---|---|"]
    lines += [
        f"| {name} | {row['status']} | {_n(row.get('seconds'))} | {_n(row.get('peak_rss_mib'), 0)} |"
        for name, row in b.items()
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="Small settings; skips box_fidelity, mask_fidelity, time_to_quality."
    )
    parser.add_argument("--only", help=f"Comma-separated subset of: {', '.join(BENCHMARKS)}")
    parser.add_argument(
        "--out", type=Path, default=HERE, help="Folder for results.json and results.md (default: benchmarks/)."
    )
    parser.add_argument("--timeout", type=float, help="Seconds per benchmark before it is stopped (default: none).")
    a = parser.parse_args()
    chosen = a.only.split(",") if a.only else list(BENCHMARKS)
    unknown = [n for n in chosen if n not in BENCHMARKS]
    if unknown:
        parser.error(f"--only: unknown {unknown}; known: {', '.join(BENCHMARKS)}")
    results = {
        "quick": a.quick,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "device": device(),
        "load_before": [round(x, 2) for x in os.getloadavg()],
        "benchmarks": {},
    }
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="benchmarks_") as work:
        for name in BENCHMARKS:
            full, quick = BENCHMARKS[name]
            args = quick if a.quick else full
            if name not in chosen or args is None:
                results["benchmarks"][name] = {"status": "skipped" + (" in --quick" if args is None else "")}
                continue
            print(f"== {name} {' '.join(args)}", flush=True)
            row = run_one(name, args, Path(work), a.timeout)
            print(row["output"].rstrip()[-1500:], f"\n-> {row['status']} in {row['seconds']:.0f} s", flush=True)
            results["benchmarks"][name] = row
    results["seconds"] = round(time.perf_counter() - started, 1)
    results["load_after"] = [round(x, 2) for x in os.getloadavg()]
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "results.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    (a.out / "results.md").write_text(markdown(results), encoding="utf-8")
    print(markdown(results))
    failed = [n for n, row in results["benchmarks"].items() if not row["status"].startswith(("ok", "skipped"))]
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
