#!/usr/bin/env bash
# Build a Debian base image with no registry at all: debootstrap a release into a
# temporary folder, import it as an image. Python 3 and venv are included, so the
# image can stand in for python:3.X-slim as an envkit --base-image.
#   build-base.sh [RELEASE] [IMAGE]     (defaults: bookworm envkit-base:RELEASE)
#   (or: envkit base 3.11, which also records the image in the user's config)
# Idempotent: does nothing when IMAGE already exists (set ENVKIT_REBUILD_BASE=1 to redo).
set -euo pipefail

RELEASE=${1:-bookworm}
IMAGE=${2:-envkit-base:$RELEASE}
MIRROR=${ENVKIT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# The docker client envkit builds with ($ENVKIT_DOCKER), else Debian's, else the one on PATH.
DOCKER=${ENVKIT_DOCKER:-/usr/bin/docker}
if [ ! -x "$DOCKER" ]; then DOCKER=$(command -v docker || echo docker); fi

if [ -z "${ENVKIT_REBUILD_BASE:-}" ] && "$DOCKER" image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "build-base: $IMAGE already exists"
    exit 0
fi

root=$(mktemp -d /tmp/envkit-base.XXXXXX)
trap 'rm -rf "$root"' EXIT

echo "build-base: debootstrap $RELEASE from $MIRROR"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    "$RELEASE" "$root" "$MIRROR" >"$root.log" 2>&1 || {
    tail -n 30 "$root.log" >&2; rm -f "$root.log"; exit 1; }
rm -f "$root.log"
# Keep the image small and deterministic: no apt lists or caches.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb

tar -C "$root" -c . | "$DOCKER" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' - "$IMAGE" >/dev/null
echo "build-base: imported $IMAGE ($("$DOCKER" run --rm "$IMAGE" python3 --version))"
