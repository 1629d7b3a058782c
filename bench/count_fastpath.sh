#!/usr/bin/env bash
# Instructions per malloc+free pair on the random-replace loop (bench/random_replace.c), counted
# by callgrind, inside the allocator (malloc and free apart) and with the loop's own work: the
# difference between a run of 2N and a run of N steps, divided by N, so start-up cancels out.
# Repeatable whatever else the machine is doing. Same method and code as
# `bench/run.py --mode instructions` (bench/callgrind.py; see bench/README.md).
#
# usage: bench/count_fastpath.sh [build-dir=build] [allocator.so ...]   (none: ApexAlloc; "glibc": none)
#        APEX_SECURE=2 bench/count_fastpath.sh build   counts the hardened mode
set -euo pipefail
build=${1:-build}; shift || true
env_args=()
[ -z "${APEX_SECURE:-}" ] || env_args=(--env "APEX_SECURE=$APEX_SECURE")
exec python3 "$(dirname "$0")/callgrind.py" --build-dir "$build" "${env_args[@]}" "$@"
