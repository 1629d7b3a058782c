#!/usr/bin/env bash
# Runs the libFuzzer harness for a bounded time on a scratch copy of the seed corpus, so that the
# inputs it discovers never land in the source tree. Crashing inputs are kept in ARTIFACT_DIR.
#
#   run_fuzz.sh FUZZER CORPUS_DIR SECONDS ARTIFACT_DIR [extra libFuzzer flags...]
set -euo pipefail
if [[ $# -lt 4 ]]; then
  echo "usage: $0 FUZZER CORPUS_DIR SECONDS ARTIFACT_DIR [libFuzzer flags...]" >&2
  exit 2
fi
fuzzer=$1 corpus=$2 seconds=$3 artifacts=$4
shift 4
if [[ ! -x $fuzzer ]]; then
  echo "run_fuzz.sh: $fuzzer was not built" >&2
  exit 1
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/apex-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp -R "$corpus"/. "$work/"
mkdir -p "$artifacts"
echo "fuzzing $fuzzer for ${seconds}s on a copy of $corpus ($(ls "$work" | wc -l) seed inputs)"
# -rss_limit_mb: a leak or a runaway mapping is a failure, not a slow machine.
"$fuzzer" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=30 -print_final_stats=1 \
          -artifact_prefix="$artifacts/" "$@" "$work"
echo "fuzzing finished without a crash; corpus grew to $(ls "$work" | wc -l) inputs"
