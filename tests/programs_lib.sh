# programs_lib.sh — what the real-program tests share (sourced by tests/preload_programs.sh and
# tests/hardened/hardened_programs.sh): the program check and the "run twice and compare" harness.
#
# The sourcing script calls programs_init, and sets before calling run_twice:
#   PRELOAD_MODE   the second run's name, in file names and messages (e.g. "preload", "hardened")
#   PRELOAD_WHAT   how messages describe it (e.g. "with LD_PRELOAD", "under APEX_SECURE=2")
#   PRELOAD_ENV    an array of VAR=value exported for the second run only

# programs_init NAME LIB: the library to preload (LIB, absolute), a fresh work directory (WORK,
# removed at exit), the Python to use (PY: the system's, where a pyenv shim would add a chain of
# shell scripts to every run), a fixed locale and time zone, and no allocator variables inherited.
programs_init() {
  LIB=$(readlink -f "$2")
  if [ ! -f "$LIB" ]; then
    echo "FAIL: $LIB does not exist" >&2
    exit 1
  fi
  if [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; else PY=$(command -v python3 || true); fi
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/apex-$1.XXXXXX")
  trap 'rm -rf "$WORK"' EXIT
  export LC_ALL=C TZ=UTC
  unset LD_PRELOAD APEX_SECURE
}

need() {
  if ! command -v "$1" >/dev/null 2>&1; then
    echo "FAIL: '$1' is not installed; scripts/setup.sh installs what these tests need" >&2
    return 1
  fi
}

# run_twice NAME FN: FN's workload once plainly and once with PRELOAD_ENV, each in a fresh
# directory. Passes only if both runs exit 0, print exactly the same standard output, and the
# second run says nothing on stderr about ApexAlloc or a failed preload.
run_twice() {
  local name=$1 fn=$2 mode rc
  for mode in plain "$PRELOAD_MODE"; do
    mkdir -p "$WORK/$name-$mode"
    (
      set -e
      cd "$WORK/$name-$mode"
      if [ "$mode" != plain ]; then export "${PRELOAD_ENV[@]}"; fi
      "$fn"
    ) >"$WORK/$name.$mode.out" 2>"$WORK/$name.$mode.err"
    rc=$?
    if [ $rc -ne 0 ]; then
      echo "FAIL: $name ($mode run) exited with status $rc" >&2
      echo "---- stderr ----" >&2
      tail -n 30 "$WORK/$name.$mode.err" >&2
      if [ "$mode" = plain ]; then echo "(the run WITHOUT the preload failed: an environment problem)" >&2; fi
      return 1
    fi
  done
  if grep -E -i "apexalloc|cannot be preloaded" "$WORK/$name.$PRELOAD_MODE.err" >/dev/null; then
    echo "FAIL: $name: the run $PRELOAD_WHAT reported on stderr:" >&2
    grep -E -i "apexalloc|cannot be preloaded" "$WORK/$name.$PRELOAD_MODE.err" | head -n 20 >&2
    return 1
  fi
  if ! cmp -s "$WORK/$name.plain.out" "$WORK/$name.$PRELOAD_MODE.out"; then
    echo "FAIL: $name: output $PRELOAD_WHAT differs from the output without the preload" >&2
    diff "$WORK/$name.plain.out" "$WORK/$name.$PRELOAD_MODE.out" | head -n 40 >&2
    return 1
  fi
  echo "ok: $name: identical output without the preload and $PRELOAD_WHAT ($(wc -l <"$WORK/$name.plain.out") lines)"
}
