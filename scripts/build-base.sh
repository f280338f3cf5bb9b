#!/usr/bin/env bash
# The script ships inside the package (envkit/bases/build-base.sh), where `envkit base` runs it;
# this path stays for CI and for habit. Same arguments.
exec bash "$(dirname "$0")/../envkit/bases/build-base.sh" "$@"
