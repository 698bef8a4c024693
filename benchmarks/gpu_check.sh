#!/usr/bin/env bash
# gpu_check.sh: one prepared check of defectsynth on a CUDA GPU, under 8 minutes, one JSON.
#
#   benchmarks/gpu_check.sh [--crackforest PATH] [--out FILE] [--python PY] [--budget SECONDS] [--cpu-smoke]
#
# Stages (each under its own time limit, all together under --budget, default 470 s):
#   install   a venv (.venv-gpu in the checkout, --system-site-packages so a preinstalled torch is
#             used; the GPU machine has no network) and `pip install -e .` of this checkout
#   env       torch, CUDA and GPU name, bf16 support
#   train128  benchmarks/train_throughput.py at 128 px, bf16: ours vs the plain diffusers loop
#   train256  the same at 256 px
#   sample    benchmarks/sample_throughput.py at 128 px: images/s per scheduler (ddim, ddpm, dpm)
#   fidelity  benchmarks/fidelity.py at 128 px on a copy of CrackForest in the checkout (a short
#             bf16 training, ddim 50 samples, TSTR, texture, SAE/EBR on the test boxes)
# Every stage's JSON carries torch's peak CUDA allocation. The JSON (default $OUT/gpu_check.json,
# else ./gpu_check.json) holds each stage's status, seconds and figures; a failed or timed-out
# stage is marked and the others still run.
#
# CrackForest: --crackforest PATH, else $DEFECTSYNTH_CRACKFOREST, else shared/data/crackforest or
# crackforest/ in the checkout; absent, the fidelity stage is marked skipped.
# --python PY: use this interpreter (with the project importable from src/) instead of the venv.
# --cpu-smoke: no GPU needed; tiny sizes on the CPU, to check the script's plumbing and JSON.
# Exit codes: 0 all stages ok, 1 a stage failed or timed out, 2 bad arguments, 3 no CUDA GPU.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT_FILE="${OUT:-.}/gpu_check.json"
CRACKFOREST="${DEFECTSYNTH_CRACKFOREST:-}"
PYTHON=""
BUDGET=470
SMOKE=0

die() { echo "gpu_check: $1" >&2; exit "${2:-2}"; }

while (($#)); do
  case "$1" in
    --crackforest) [[ $# -ge 2 ]] || die "--crackforest needs a path"; CRACKFOREST=$2; shift 2 ;;
    --out) [[ $# -ge 2 ]] || die "--out needs a file"; OUT_FILE=$2; shift 2 ;;
    --python) [[ $# -ge 2 ]] || die "--python needs an interpreter"; PYTHON=$2; shift 2 ;;
    --budget) [[ $# -ge 2 && $2 =~ ^[0-9]+$ ]] || die "--budget needs whole seconds"; BUDGET=$2; shift 2 ;;
    --cpu-smoke) SMOKE=1; shift ;;
    -h|--help) sed -n '2,25p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
if [[ -z $CRACKFOREST ]]; then
  for candidate in "$ROOT/shared/data/crackforest" "$ROOT/crackforest"; do
    [[ -d $candidate ]] && CRACKFOREST=$candidate && break
  done
fi

if ((SMOKE == 0)); then
  command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 \
    || die "no CUDA GPU: nvidia-smi is missing or lists no device (run with --cpu-smoke to check the script on a CPU)" 3
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
STAGES="$WORK/stages.tsv"
: >"$STAGES"
DEADLINE=$(($(date +%s) + BUDGET))

# run_stage NAME LIMIT COMMAND...: the command under `timeout`, its output in $WORK/NAME.log, one line in stages.tsv
run_stage() {
  local name=$1 limit=$2 left start rc status
  shift 2
  left=$((DEADLINE - $(date +%s)))
  ((left < limit)) && limit=$left
  if ((limit < 10)); then
    printf '%s\tskipped (out of time)\t0\n' "$name" >>"$STAGES"
    echo "== $name: skipped, out of time"
    return 1
  fi
  echo "== $name (limit ${limit} s)"
  start=$(date +%s)
  timeout --kill-after=10 "$limit" "$@" >"$WORK/$name.log" 2>&1
  rc=$?
  case $rc in
    0) status=ok ;;
    124|137) status="timed out after ${limit} s" ;;
    *) status="failed (exit $rc)" ;;
  esac
  printf '%s\t%s\t%s\n' "$name" "$status" "$(($(date +%s) - start))" >>"$STAGES"
  tail -n 4 "$WORK/$name.log" | sed 's/^/   /'
  echo "   -> $status"
  [[ $status == ok ]]
}

skip_stage() { printf '%s\tskipped (%s)\t0\n' "$1" "$2" >>"$STAGES"; echo "== $1: skipped ($2)"; }

# 1. the interpreter: a venv with this checkout installed, or the one given
install() {
  local venv="$ROOT/.venv-gpu"
  python3 -m venv --system-site-packages "$venv" || return 1
  "$venv/bin/python" -m pip install --no-input --disable-pip-version-check -e "$ROOT" \
    || "$venv/bin/python" -m pip install --no-input --disable-pip-version-check --no-deps --no-build-isolation -e "$ROOT"
}
if [[ -n $PYTHON ]]; then
  skip_stage install "--python $PYTHON"
  PY=(env "PYTHONPATH=$ROOT/src${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON")
else
  run_stage install 180 bash -c "$(declare -f install); ROOT='$ROOT' install" \
    || die "installing the project into $ROOT/.venv-gpu failed (see $WORK/install.log): the machine needs torch and the dependencies preinstalled" 1
  PY=("$ROOT/.venv-gpu/bin/python")
fi

# 2. the stages
if ((SMOKE)); then
  TRAIN_ARGS=(--steps 2 --repeats 1 --images 16 --batch-size 4 --mixed-precision no)
  SIZES=(32 32)
  SAMPLE_ARGS=(--size 32 --num 4 --steps 2 --batch-size 4)
  FIDELITY_ARGS=(--toy --quick --toy-images 24 --train-steps 4 --steps 2 --epochs 1)
  export ACCELERATE_USE_CPU=1 CUDA_VISIBLE_DEVICES=""
else
  TRAIN_ARGS=(--steps 20 --repeats 2 --images 120 --batch-size 32 --mixed-precision bf16 --plain-mixed-precision bf16)
  SIZES=(128 256)
  SAMPLE_ARGS=(--size 128 --num 64 --steps 20 --batch-size 32)
  FIDELITY_ARGS=(--size 128 --train '{"max_steps": 600, "mixed_precision": "bf16", "batch_size": 32}' --epochs 15 --batch-size 32)
fi

run_stage env 90 "${PY[@]}" -c '
import json, sys, torch
cuda = torch.cuda.is_available()
info = {"python": sys.version.split()[0], "torch": torch.__version__, "cuda": torch.version.cuda, "cuda_available": cuda,
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "capability": list(torch.cuda.get_device_capability(0)) if cuda else None,
        "bf16": torch.cuda.is_bf16_supported() if cuda else None,
        "memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1) if cuda else None}
json.dump(info, open(sys.argv[1], "w"), indent=1)
print(info)
sys.exit(0 if cuda or sys.argv[2] == "1" else 3)' "$WORK/env.json" "$SMOKE"
ENV_RC=$(awk -F'\t' '$1 == "env" {print $2}' "$STAGES")
if [[ $ENV_RC != ok && $SMOKE == 0 ]]; then
  die "torch in this interpreter sees no CUDA GPU although nvidia-smi lists one (see $WORK/env.log)" 3
fi

run_stage train128 100 "${PY[@]}" "$ROOT/benchmarks/train_throughput.py" --size "${SIZES[0]}" "${TRAIN_ARGS[@]}" --json "$WORK/train128.json"
run_stage train256 120 "${PY[@]}" "$ROOT/benchmarks/train_throughput.py" --size "${SIZES[1]}" "${TRAIN_ARGS[@]}" --json "$WORK/train256.json"
run_stage sample 80 "${PY[@]}" "$ROOT/benchmarks/sample_throughput.py" "${SAMPLE_ARGS[@]}" --json "$WORK/sample.json"
if ((SMOKE)); then
  run_stage fidelity 300 "${PY[@]}" "$ROOT/benchmarks/fidelity.py" "${FIDELITY_ARGS[@]}" --out "$WORK/fidelity" --json "$WORK/fidelity.json"
elif [[ -n $CRACKFOREST && -d $CRACKFOREST ]]; then
  run_stage fidelity 240 "${PY[@]}" "$ROOT/benchmarks/fidelity.py" --crackforest "$CRACKFOREST" "${FIDELITY_ARGS[@]}" \
    --out "$WORK/fidelity" --json "$WORK/fidelity.json"
else
  skip_stage fidelity "no CrackForest copy: give --crackforest PATH"
fi

# 3. one JSON (stdlib only, written atomically)
mkdir -p "$(dirname "$OUT_FILE")"
python3 "$ROOT/benchmarks/gpu_check_report.py" "$STAGES" "$WORK" "$OUT_FILE" "$SMOKE" || die "could not write $OUT_FILE" 1
echo "wrote $OUT_FILE (logs in $WORK)"
if grep -qv -P '\t(ok|skipped[^\t]*)\t' "$STAGES"; then
  exit 1
fi
exit 0
