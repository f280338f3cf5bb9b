#!/usr/bin/env bash
# Produce every GPU measurement envkit's docs quote, in one go, on a host with an NVIDIA GPU
# and torch installed (no Docker needed: the probe and the benchmark run on the host's Python).
#
#   scripts/gpu-evidence.sh [OUT_DIR]          (default docs/gpu)
#
# WHEELS=DIR installs envkit's own small dependencies (click, PyYAML, packaging, pytest,
# matplotlib) from a folder of wheels on a machine without network; PYTHON picks the
# interpreter. Every command's output and exit code lands in OUT_DIR, with commands.txt
# listing exactly what ran.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-docs/gpu}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
: > "$OUT/commands.txt"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1

if ! "$PY" -c "import click, yaml, packaging, pytest" 2>/dev/null; then
    "$PY" -m pip install -q ${WHEELS:+--no-index --find-links "$WHEELS"} \
        click pyyaml packaging pytest matplotlib || exit 1
fi

# step NAME COMMAND... : run, keep stdout in NAME, stderr in NAME.err, time and exit code.
step() {
    local name=$1; shift
    echo "\$ $*" >> "$OUT/commands.txt"
    local start code
    start=$EPOCHREALTIME
    "$@" > "$OUT/$name" 2> "$OUT/$name.err"
    code=$?
    awk -v a="$start" -v b="$EPOCHREALTIME" -v c="$code" \
        'BEGIN { printf "  -> exit %s, %.1f s\n", c, b - a }' >> "$OUT/commands.txt"
    echo "$name: exit $code"
}

step nvidia-smi.txt nvidia-smi
step versions.txt "$PY" -c "import sys, torch; print(sys.version); print(torch.__version__, torch.version.cuda, torch.backends.cudnn.version(), torch.cuda.get_arch_list())"
# doctor on the host: every GPU check (real matmul and conv on each GPU against the CPU)
step doctor-host.json "$PY" -m envkit doctor --host --json
step doctor-host.txt "$PY" -m envkit doctor --host
# static prediction: torch 1.13 (cu117) has no sm_90 kernels and no PTX -> no kernel image
step doctor-static-torch1.13.txt "$PY" -m envkit doctor torch1.13-cuda11 --static
step doctor-static-torch1.4.txt "$PY" -m envkit doctor torch1.4-cuda10 --static
step doctor-static-torch2.14.txt "$PY" -m envkit doctor torch2.14-cuda13 --static
step probe-host.json "$PY" envkit/probe.py
# the benchmark: default run (target: under 2 minutes on an H100), then the quick one
step bench-default.json "$PY" envkit/bench.py --out "$OUT/bench-h100.json"
step bench-quick.json "$PY" envkit/bench.py --quick
# bench against the hand-tuned reference loop, same process, batch 1024 (target >= 0.95x)
step reference-1024.json "$PY" scripts/reference_train.py --batch 1024 --device cuda
step plots.txt "$PY" -c "import json; from envkit import report; print(report.plot_bench(json.load(open('$OUT/bench-h100.json')), '$OUT', prefix='bench-h100-'))"
step pytest-gpu.txt "$PY" -m pytest tests/gpu -v -rs -p no:cacheprovider
echo "done: $OUT (commands and exit codes in $OUT/commands.txt)"
