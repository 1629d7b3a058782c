#!/usr/bin/env bash
# Instructions per malloc+free pair on the random-replace loop (bench/random_replace.c), counted
# by callgrind: the difference between a run of 2N and a run of N steps, divided by N, so start-up
# and the loop's set-up cancel out. Repeatable whatever else the machine is doing.
#
# usage: bench/count_fastpath.sh [build-dir=build] [allocator.so ...]   (none: ApexAlloc; "glibc": none)
set -euo pipefail
build=${1:-build}; shift || true
libs=("$@"); [ ${#libs[@]} -gt 0 ] || libs=("$build/core/libapexalloc.so")
bin="$build/bench/bench_random_replace"
n=200000
count() {  # $1: preload (or glibc), $2: steps -> total instructions
  local pre=() out
  [ "$1" = glibc ] || pre=(env "LD_PRELOAD=$1")
  out=$(mktemp)
  "${pre[@]}" valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" "$2" >/dev/null 2>&1
  awk '/^summary:/ {print $2}' "$out"; rm -f "$out"
}
for lib in "${libs[@]}"; do
  a=$(count "$lib" "$n"); b=$(count "$lib" $((2 * n)))
  echo "$(basename "$lib"): $(( (b - a) / n )) instructions per malloc+free pair (loop included)"
done
