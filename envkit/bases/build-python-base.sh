#!/usr/bin/env bash
# Build a base image with a Python that no reachable Debian release ships (3.7, 3.8), for the
# oldest entries, with no registry: a CPython installation made on this host (pyenv, or
# `./configure --prefix=... --enable-shared && make install`) is copied into /usr/local of a
# debootstrap base (build-base.sh beside this script). The result stands in for python:3.X-slim as an
# envkit --base-image; the host's glibc must not be newer than the base's.
#   build-python-base.sh PREFIX [IMAGE] [FROM]       (or: envkit base 3.8 --from-prefix PREFIX)
#   e.g. build-python-base.sh ~/.pyenv/versions/3.8.18    -> envkit-base:py3.8
# Idempotent: does nothing when IMAGE already exists (set ENVKIT_REBUILD_BASE=1 to redo).
set -euo pipefail

PREFIX=${1:?usage: build-python-base.sh PREFIX [IMAGE] [FROM]}
PREFIX=${PREFIX%/}
FROM=${3:-envkit-base:bookworm}
# The docker client envkit builds with ($ENVKIT_DOCKER), else Debian's, else the one on PATH.
DOCKER=${ENVKIT_DOCKER:-/usr/bin/docker}
if [ ! -x "$DOCKER" ]; then DOCKER=$(command -v docker || echo docker); fi

version=
for candidate in "$PREFIX"/bin/python3.*; do
    name=${candidate##*/python}
    if [[ $name =~ ^3\.[0-9]+$ ]]; then version=$name; break; fi
done
if [ -z "$version" ]; then
    echo "build-python-base: no bin/python3.X under $PREFIX" >&2
    exit 2
fi
IMAGE=${2:-envkit-base:py$version}

if [ -z "${ENVKIT_REBUILD_BASE:-}" ] && "$DOCKER" image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "build-python-base: $IMAGE already exists"
    exit 0
fi
if ! "$DOCKER" image inspect "$FROM" >/dev/null 2>&1; then
    echo "build-python-base: base image $FROM is missing: make it first: envkit base 3.11" >&2
    exit 2
fi

context=$(mktemp -d /tmp/envkit-pybase.XXXXXX)
trap 'rm -rf "$context"' EXIT
# Only what a runtime needs: the interpreter, its shared library and the standard library
# (with ensurepip, which `python3 -m venv` uses). Scripts such as pip or idle carry the
# build prefix in their #! line and would not run from /usr/local.
mkdir -p "$context/usr/local/bin" "$context/usr/local/lib"
cp -a "$PREFIX/bin/python$version" "$context/usr/local/bin/"
ln -s "python$version" "$context/usr/local/bin/python3"
cp -a "$PREFIX"/lib/libpython"$version"*.so* "$context/usr/local/lib/" 2>/dev/null || true
cp -a "$PREFIX/lib/python$version" "$context/usr/local/lib/"
rm -rf "$context/usr/local/lib/python$version/test" \
    "$context/usr/local/lib/python$version/site-packages"/*
find "$context" -name __pycache__ -prune -exec rm -rf {} +

cat >"$context/Dockerfile" <<EOF
FROM $FROM
COPY usr/local/ /usr/local/
# The interpreter's RUNPATH names the build prefix; ld.so's cache finds /usr/local/lib instead.
RUN ldconfig \\
 && python3 -c "import sys, ssl, sqlite3, ctypes, venv; assert sys.version_info[:2] == (${version/./, })" \\
 && python3 -m venv /tmp/venv-check && rm -rf /tmp/venv-check
EOF

DOCKER_BUILDKIT=1 "$DOCKER" build -q -t "$IMAGE" "$context" >/dev/null
echo "build-python-base: built $IMAGE ($("$DOCKER" run --rm "$IMAGE" python3 --version))"
