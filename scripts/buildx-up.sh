#!/usr/bin/env bash
# Make `docker buildx` (needed by `docker buildx bake`) available to Debian's docker client.
# bookworm has no package for it; trixie's docker-buildx is a static binary that needs only
# libc6 >= 2.34, so that one package comes from the trixie suite of the archive already
# configured, through a throwaway apt state. Idempotent.
set -euo pipefail
DOCKER=/usr/bin/docker
if "$DOCKER" buildx version >/dev/null 2>&1; then
    "$DOCKER" buildx version
    exit 0
fi
apt_tmp=$(mktemp -d)
trap 'rm -rf "$apt_tmp"' EXIT
mkdir -p "$apt_tmp/lists/partial" "$apt_tmp/cache/archives/partial"
awk 'BEGIN { RS = ""; ORS = "\n\n" } NR == 1' /etc/apt/sources.list.d/debian.sources \
    | sed 's/^Suites:.*/Suites: trixie/' > "$apt_tmp/trixie.sources"
apt_opts=(-o "Dir::Etc::sourcelist=-" -o "Dir::Etc::sourceparts=$apt_tmp"
          -o "Dir::State::Lists=$apt_tmp/lists" -o "Dir::Cache=$apt_tmp/cache")
apt-get "${apt_opts[@]}" update -qq
(cd "$apt_tmp" && apt-get "${apt_opts[@]}" download docker-buildx)
dpkg -i "$apt_tmp"/docker-buildx_*.deb >/dev/null
"$DOCKER" buildx version
