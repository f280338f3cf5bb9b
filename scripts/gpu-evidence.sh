#!/usr/bin/env bash
# Produce every GPU measurement envkit's docs quote, in one go, on a host with an NVIDIA GPU
# and torch installed (no Docker needed: the probe and the benchmark run on the host's Python).
#
#   scripts/gpu-evidence.sh [OUT_DIR]          (default docs/gpu)
#
# WHEELS=DIR installs envkit's own small dependencies (click, PyYAML, packaging, pytest) from a
# folder of wheels on a machine without network (scripts/gpu-wheels.sh gathers one for Python
# 3.9-3.14). PYTHON picks the interpreter; by default the first of python3 and python that
# imports torch. Every command's output and exit code lands in OUT_DIR, with commands.txt
# listing exactly what ran. The benchmark and the reference loop need only torch: when the
# dependencies cannot be installed, or Python is older than 3.9 (envkit's CLI needs it), the
# envkit steps are skipped with a note and the rest still runs. The plots need matplotlib;
# without it they are skipped, and commands.txt gives the command that draws them later on any
# host from bench-gpu.json.
#
# Each step has a time limit (seconds, scaled by STEP_TIMEOUT_SCALE, default 1), so one hung
# step costs its limit and not the whole run; a step that hits it exits 124. The steps write as
# they go: when the whole run is cut short, what finished is already in OUT_DIR.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-docs/gpu}
PY=${PYTHON:-}
if [ -z "$PY" ]; then
    # the first interpreter on the PATH that has torch, else python3
    for candidate in python3 python; do
        if "$candidate" -c "import torch" 2>/dev/null; then PY=$candidate; break; fi
    done
    PY=${PY:-python3}
fi
mkdir -p "$OUT"
: > "$OUT/commands.txt"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1

now() { date +%s.%N; }

# step NAME LIMIT COMMAND... : run with a time limit of LIMIT seconds, keep stdout in NAME,
# stderr in NAME.err, time and exit code.
step() {
    local name=$1 limit=$2; shift 2
    limit=$(awk -v l="$limit" -v s="${STEP_TIMEOUT_SCALE:-1}" 'BEGIN { v = int(l * s); printf "%d", v < 1 ? 1 : v }')
    echo "\$ $*" >> "$OUT/commands.txt"
    local start code
    start=$(now)
    timeout --kill-after=10 "$limit" "$@" > "$OUT/$name" 2> "$OUT/$name.err"
    code=$?
    awk -v a="$start" -v b="$(now)" -v c="$code" -v l="$limit" \
        'BEGIN { printf "  -> exit %s, %.1f s%s\n", c, b - a,
                 (c == 124 || c == 137) ? " (time limit " l " s)" : "" }' >> "$OUT/commands.txt"
    echo "$name: exit $code"
}

# skipped NAME WHY : record a step that could not run here.
skipped() {
    echo "# skipped $1: $2" >> "$OUT/commands.txt"
    echo "$1: skipped ($2)"
}

ENVKIT_OK=1
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 9))'; then
    ENVKIT_OK=0; WHY="envkit's CLI needs Python >= 3.9; $("$PY" -V 2>&1)"
elif ! "$PY" -c "import click, yaml, packaging, pytest, jsonschema" 2>/dev/null; then
    if ! "$PY" -m pip install -q ${WHEELS:+--no-index --find-links "$WHEELS"} \
        click pyyaml packaging pytest jsonschema; then
        ENVKIT_OK=0; WHY="could not install click, PyYAML, packaging, pytest, jsonschema (set WHEELS=DIR)"
    fi
fi
[ "$ENVKIT_OK" = 1 ] || echo "warning: $WHY; envkit CLI steps are skipped" >&2

# envkit_step NAME COMMAND... : a step that needs envkit's dependencies.
envkit_step() {
    if [ "$ENVKIT_OK" = 1 ]; then step "$@"; else skipped "$1" "$WHY"; fi
}

step nvidia-smi.txt 60 nvidia-smi
step versions.txt 120 "$PY" -c "import sys, torch; print(sys.version); print(torch.__version__, torch.version.cuda, torch.backends.cudnn.version(), torch.cuda.get_arch_list())"
# doctor on the host: every GPU check (real matmul and conv on each GPU against the CPU)
envkit_step doctor-host.json 180 "$PY" -m envkit doctor --host --json
envkit_step doctor-host.txt 180 "$PY" -m envkit doctor --host
# static prediction: torch 1.13 (cu117) has no sm_90 kernels and no PTX -> no kernel image
envkit_step doctor-static-torch1.13.txt 60 "$PY" -m envkit doctor torch1.13-cuda11 --static
# torch 1.4 (cu101): its own kernels carry compute_37 PTX, but the cuBLAS/cuDNN linked into
# the wheel stop at sm_75 with no PTX -> fails too
envkit_step doctor-static-torch1.4.txt 60 "$PY" -m envkit doctor torch1.4-cuda10 --static
envkit_step doctor-static-torch2.14.txt 60 "$PY" -m envkit doctor torch2.14-cuda13 --static
step probe-host.json 180 "$PY" envkit/inside/probe.py
# the benchmark on the GPU (never a silent CPU fallback): the default run (target: under 2
# minutes on an H100), then the quick one
step bench-default.json 300 "$PY" envkit/inside/bench.py --device cuda --out "$OUT/bench-gpu.json"
step bench-quick.json 180 "$PY" envkit/inside/bench.py --device cuda --quick
# the same quick run as a user starts it: the CLI runs the bundled program through
# envkit.programs on this host and picks the device itself
envkit_step bench-host-cli.json 240 "$PY" -m envkit bench --host --quick --json --out "$OUT/bench-cli"
# fp16 with loss scaling, the mixed precision of GPUs without bf16: asked for by name, so it
# runs on a bf16 GPU too
step bench-fp16.json 120 "$PY" envkit/inside/bench.py --device cuda --parts throughput --precisions fp16 --batches 256,1024
# out of memory as a measurement: batches past what fits. ResNet-18 at 32x32 saves 4.7 MB of
# activations per image for backward in fp32/tf32 (counted with saved_tensors_hooks on the
# CPU), so 80 GB runs out by 24576 at the latest and 141 GB by 32768.
step bench-oom.json 240 "$PY" envkit/inside/bench.py --device cuda --parts throughput --precisions tf32 --batches 8192,16384,24576,32768
# bench against the hand-tuned reference loop, same process, batch 1024 (target >= 0.95x)
step reference-1024.json 240 "$PY" scripts/reference_train.py --batch 1024 --device cuda
PLOT="import json; from envkit import report; print(report.plot_bench(json.load(open('$OUT/bench-gpu.json')), '$OUT', prefix='bench-gpu-'))"
if "$PY" -c "import matplotlib" 2>/dev/null; then
    envkit_step plots.txt 120 "$PY" -c "$PLOT"
else
    skipped plots.txt "no matplotlib here; on any host with it: PYTHONPATH=. python -c \"$PLOT\""
fi
# one validation record of this host's run (doctor --host + the default bench), in
# OUT/records; add it to the repository's with `envkit records --store docs/records import OUT/records`
envkit_step record.txt 60 "$PY" -m envkit records --store "$OUT/records" add-host "$OUT/doctor-host.json" "$OUT/bench-gpu.json"
envkit_step pytest-gpu.txt 300 "$PY" -m pytest tests/gpu -v -rs -p no:cacheprovider
echo "done: $OUT (commands and exit codes in $OUT/commands.txt)"
