#!/usr/bin/env bash
# Gather the wheels that scripts/gpu-evidence.sh needs on a GPU host without network, for every
# CPython from 3.9 to 3.14, into one small folder to copy there (torch itself is not included:
# the GPU host brings its own CUDA build).
#
#   scripts/gpu-wheels.sh [DIR]          (default wheels-gpu; about 8 MB)
#
# then, on the GPU host:   WHEELS=DIR scripts/gpu-evidence.sh
#
# pip download evaluates environment markers with the interpreter running it, not with the
# --python-version asked for, so the backports pytest needs before 3.11 (exceptiongroup, tomli)
# are named explicitly. matplotlib is left out on purpose: it is large and per-version, and the
# plots are drawn afterwards on any host from the bench report (see docs/gpu.md).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-wheels-gpu}
PY=${PYTHON:-python3}
mkdir -p "$DIR"
for version in 3.9 3.10 3.11 3.12 3.13 3.14; do
    echo "gpu-wheels: Python $version"
    "$PY" -m pip download -q -d "$DIR" --only-binary=:all: --implementation cp \
        --python-version "$version" \
        --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux_2_28_x86_64 \
        click pyyaml packaging pytest exceptiongroup tomli typing_extensions \
        2> >(grep -v "^WARNING: Location" >&2)
done
echo "gpu-wheels: $(ls "$DIR" | wc -l) wheels, $(du -sh "$DIR" | cut -f1) in $DIR"
