#!/usr/bin/env bash
# Make room on the engine's disk before work that builds images: `scripts/disk-room.sh GB`.
# Says how much is free under the engine's data root; when that is less than GB, it reclaims
# the engine's build cache and the images no container uses (both are remade on demand), then
# says what is free. Exits 1, naming the shortfall, when there is still less than GB: a test
# run that fills the disk fails far from the cause (every later test errors in its fixtures).
set -euo pipefail

need=${1:?usage: scripts/disk-room.sh GB}
DOCKER=/usr/bin/docker
root=$("$DOCKER" info --format '{{.DockerRootDir}}')
free_gb() { df --output=avail -BG "$root" | tail -n 1 | tr -dc '0-9'; }

free=$(free_gb)
echo "disk-room: ${free}G free under $root (want ${need}G)"
if [ "$free" -ge "$need" ]; then
    exit 0
fi
echo "disk-room: reclaiming the engine's build cache and unused images"
"$DOCKER" builder prune --all --force >/dev/null
"$DOCKER" image prune --all --force >/dev/null
free=$(free_gb)
echo "disk-room: ${free}G free under $root after reclaiming"
if [ "$free" -lt "$need" ]; then
    echo "disk-room: ${free}G free is less than the ${need}G wanted; free space on the disk" \
        "that holds $root (docker system df shows what the engine holds)" >&2
    exit 1
fi
