#!/usr/bin/env bash
# Make a Docker engine available on a Debian/Ubuntu machine where none is running.
# Idempotent: installs docker.io only when dockerd is missing, starts dockerd only when
# nothing answers, waits until it answers. `scripts/engine-up.sh --stop` stops only a
# daemon this script started (it records the pid in $ENVKIT_DOCKERD_PIDFILE).
set -euo pipefail

PIDFILE=${ENVKIT_DOCKERD_PIDFILE:-/run/envkit-dockerd.pid}
LOGFILE=${ENVKIT_DOCKERD_LOG:-/var/log/envkit-dockerd.log}
DOCKER=/usr/bin/docker   # Debian's client: BuildKit built in

answers() { "$DOCKER" info >/dev/null 2>&1; }

if [ "${1:-}" = "--stop" ]; then
    if [ -f "$PIDFILE" ]; then
        pid=$(cat "$PIDFILE")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
        rm -f "$PIDFILE"
        echo "engine-up: stopped dockerd (pid $pid)"
    else
        echo "engine-up: no dockerd started by this script; nothing stopped"
    fi
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    echo "engine-up: must run as root (it installs packages and starts dockerd)" >&2
    exit 2
fi

if ! command -v dockerd >/dev/null 2>&1 || [ ! -x "$DOCKER" ] || ! command -v debootstrap >/dev/null 2>&1; then
    echo "engine-up: installing docker.io and debootstrap"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq docker.io debootstrap >/dev/null
fi

if answers; then
    echo "engine-up: engine already answering; nothing started"
    exit 0
fi

echo "engine-up: starting dockerd (log: $LOGFILE)"
nohup dockerd >>"$LOGFILE" 2>&1 &   # appended: an earlier run's log stays for reading
echo $! >"$PIDFILE"
for i in $(seq 1 60); do
    if answers; then
        echo "engine-up: engine answering after ${i}s"
        exit 0
    fi
    sleep 1
done
echo "engine-up: dockerd did not answer within 60s; last log lines:" >&2
tail -n 20 "$LOGFILE" >&2
exit 1
