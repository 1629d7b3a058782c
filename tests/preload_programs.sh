#!/usr/bin/env bash
# Real programs under LD_PRELOAD=libapexalloc.so.
#
#   preload_programs.sh /path/to/libapexalloc.so [case ...]
#
# Cases: active python3 sqlite3 git sort gzip awk (default: all of them).
# Each program case runs the same deterministic workload twice, in fresh directories: once without and
# once with LD_PRELOAD. It passes only if both runs exit 0, print exactly the same standard output, and
# the preloaded run says nothing on stderr about ApexAlloc or about a failed preload.
# The case "active" checks that the preload is really in effect: apex_version() is reachable through
# the global symbol scope of a preloaded python3 and returns the header's version, malloc() there is
# ApexAlloc's, and the library is mapped in a preloaded process.
set -u -o pipefail

if [ $# -lt 1 ]; then
  echo "usage: $0 /path/to/libapexalloc.so [case ...]" >&2
  exit 2
fi
HERE=$(cd "$(dirname "$0")" && pwd)
HEADER="$HERE/../include/apexalloc.h"
. "$HERE/programs_lib.sh"          # the shared harness: programs_init, need, run_twice
programs_init preload "$1"
shift
if [ $# -eq 0 ]; then set -- active python3 sqlite3 git sort gzip awk; fi
PRELOAD_MODE=preload PRELOAD_WHAT="with LD_PRELOAD" PRELOAD_ENV=("LD_PRELOAD=$LIB")

# ---- workloads: each prints deterministic text on stdout ------------------------------------------

w_python3() {
  PYTHONHASHSEED=0 PYTHONMALLOC=malloc "$PY" "$HERE/preload_workload.py"
  # and once with CPython's own small-object allocator on top of ours
  PYTHONHASHSEED=0 "$PY" -c 'import json,sys; d={str(i): [i]*(i%50) for i in range(100000)}; s=json.dumps(d); print(len(s), len(json.loads(s)))'
}

w_sqlite3() {
  sqlite3 test.db <<'SQL'
PRAGMA journal_mode=WAL;
CREATE TABLE t(id INTEGER PRIMARY KEY, grp INTEGER, name TEXT, val REAL, data BLOB);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 50000)
INSERT INTO t SELECT x, x % 97, printf('name-%08d-%s', x, substr(hex(x * x), 1, 1 + x % 16)),
                     (x * 7919) % 10007 / 3.0, zeroblob(x % 300) FROM c;
CREATE INDEX t_grp ON t(grp, name);
SELECT count(*), sum(grp), printf('%.3f', avg(val)), max(length(name)), sum(length(data)) FROM t;
SELECT grp, count(*), printf('%.2f', sum(val)), min(name), max(name) FROM t GROUP BY grp ORDER BY grp LIMIT 25;
SELECT group_concat(name, ',') FROM (SELECT name FROM t WHERE grp = 5 ORDER BY name DESC LIMIT 40);
UPDATE t SET name = upper(name) || name WHERE id % 3 = 0;
DELETE FROM t WHERE id % 5 = 0;
SELECT count(*), sum(length(name)), count(DISTINCT substr(name, 1, 12)) FROM t;
SELECT a.grp, count(*) FROM t a JOIN t b ON a.id = b.id + 1 WHERE a.grp < 10 GROUP BY a.grp ORDER BY a.grp;
VACUUM;
PRAGMA integrity_check;
SQL
}

w_git() {
  export HOME="$PWD" GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
  export GIT_AUTHOR_NAME="Apex Tester" GIT_AUTHOR_EMAIL="tester@apexalloc.invalid"
  export GIT_COMMITTER_NAME="Apex Tester" GIT_COMMITTER_EMAIL="tester@apexalloc.invalid"
  git -c init.defaultBranch=main init -q repo
  cd repo
  git config pack.threads 1
  git config gc.auto 0
  for c in 1 2 3 4 5 6; do
    export GIT_AUTHOR_DATE="2024-01-0${c}T12:00:00Z" GIT_COMMITTER_DATE="2024-01-0${c}T12:00:00Z"
    mkdir -p "dir$((c % 3))"
    awk -v c="$c" -v d="dir$((c % 3))" 'BEGIN { for (f = 1; f <= 25; f++) { n = (f % 5 == 0) ? 20000 : 200;
        for (i = 0; i < n; i++) printf "commit %d file %d line %d value %d\n", c, f, i, (i * 7919 + f * c) % 100003 > (d "/file" f ".txt");
        close(d "/file" f ".txt") } }'
    rm -f "dir$(((c + 1) % 3))/file$c.txt"
    git add -A
    git commit -q -m "commit $c" -m "Touches dir$((c % 3)) and removes file$c from dir$(((c + 1) % 3))."
  done
  git log --stat
  git gc -q
  git count-objects -v | grep -E '^(count|in-pack|packs|garbage):'
  git fsck --full --no-progress
  git rev-parse HEAD 'HEAD^{tree}'
  git diff --stat HEAD~3 HEAD
  git archive --format=tar HEAD | cksum
  git grep -c "value 4" HEAD -- dir1 | sed -n 1,5p
}

gen_lines() { # deterministic pseudo-random lines
  awk -v n="$1" 'BEGIN { x = 12345; for (i = 0; i < n; i++) { x = (x * 1103515245 + 12345) % 2147483648;
    printf "%08d %d key%05d %s\n", x % 100000000, i, x % 50000, substr("abcdefghijklmnopqrstuvwxyz", x % 26 + 1, 1 + x % 20) } }'
}

w_sort() {
  gen_lines 300000 > in.txt
  sort -S 16M --parallel=2 in.txt | cksum
  sort -n -k2,2 -r in.txt | cksum
  sort -u -k3,3 in.txt | wc -l
  sort -t ' ' -k4,4 -k1,1n in.txt | sed -n 1,3p
  sort in.txt | uniq -c -w 3 | sort -rn | sed -n 1,5p
}

w_gzip() {
  gen_lines 250000 > in.txt
  gzip -6 -c in.txt > in.txt.gz
  gzip -dc in.txt.gz | cmp - in.txt && echo "gzip round trip ok"
  gzip -9 -c in.txt | gzip -dc | cksum
  gzip -1 -c in.txt | wc -c
  cksum < in.txt
  if command -v bzip2 >/dev/null 2>&1; then bzip2 -c in.txt | bzip2 -dc | cksum; fi
  if command -v xz >/dev/null 2>&1; then xz -0 -T1 -c in.txt | xz -dc | cksum; fi
  tar cf - in.txt | tar xOf - | cksum
}

w_awk() {
  gen_lines 200000 > in.txt
  awk '{ count[$3]++; sum[$4] += $2; words[$4] = words[$4] substr($1, 1, 2) }
       END { for (k in count) n++; print "keys", n;
             for (w in sum) printf "%s %d %d\n", w, sum[w], length(words[w]) }' in.txt | sort
  awk '{ a[NR % 1000] = a[NR % 1000] $0 } END { t = 0; for (i in a) t += length(a[i]); print "concat", t }' in.txt
  awk 'BEGIN { s = ""; for (i = 0; i < 20000; i++) { s = s sprintf("%d,", i * i); if (length(s) > 100000) s = substr(s, 50000) }
               n = split(s, parts, ","); print "split", n, length(s) }'
}

# ---- the cases (run_twice: tests/programs_lib.sh) ---------------------------------------------

case_active() {
  need "$PY" || return 1
  local major minor patch want got
  major=$(sed -n 's/.*APEX_VERSION_MAJOR *= *\([0-9][0-9]*\).*/\1/p' "$HEADER")
  minor=$(sed -n 's/.*APEX_VERSION_MINOR *= *\([0-9][0-9]*\).*/\1/p' "$HEADER")
  patch=$(sed -n 's/.*APEX_VERSION_PATCH *= *\([0-9][0-9]*\).*/\1/p' "$HEADER")
  if [ -z "$major" ] || [ -z "$minor" ] || [ -z "$patch" ]; then
    echo "FAIL: cannot read the version from $HEADER" >&2
    return 1
  fi
  want=$((major * 10000 + minor * 100 + patch))
  got=$(LD_PRELOAD="$LIB" "$PY" -c 'import ctypes; print(ctypes.CDLL(None).apex_version())' 2>"$WORK/active.err")
  if [ "$got" != "$want" ]; then
    echo "FAIL: active: a preloaded python3 says apex_version() = '$got', want $want" >&2
    cat "$WORK/active.err" >&2
    return 1
  fi
  # Without the preload the probe must fail, or it proves nothing.
  if "$PY" -c 'import ctypes; ctypes.CDLL(None).apex_version' >/dev/null 2>&1; then
    echo "FAIL: active: apex_version is reachable even without LD_PRELOAD; the probe is meaningless" >&2
    return 1
  fi
  # malloc in the preloaded process is ApexAlloc's: apex_usable_size accepts its blocks.
  if ! LD_PRELOAD="$LIB" "$PY" - <<'PYEOF' 2>"$WORK/active.err"; then
import ctypes
c = ctypes.CDLL(None)
c.malloc.restype = ctypes.c_void_p
c.malloc.argtypes = [ctypes.c_size_t]
c.apex_usable_size.restype = ctypes.c_size_t
c.apex_usable_size.argtypes = [ctypes.c_void_p]
c.apex_free.argtypes = [ctypes.c_void_p]
c.free.argtypes = [ctypes.c_void_p]
c.apex_malloc.restype = ctypes.c_void_p
c.apex_malloc.argtypes = [ctypes.c_size_t]
for n in (1, 100, 5000, 3 << 20):
    p = c.malloc(n)
    assert p and c.apex_usable_size(p) >= n, (n, p)
    c.apex_free(p)
    q = c.apex_malloc(n)
    assert q, n
    c.free(q)
PYEOF
    echo "FAIL: active: malloc in a preloaded python3 is not ApexAlloc's" >&2
    cat "$WORK/active.err" >&2
    return 1
  fi
  if ! LD_PRELOAD="$LIB" cat /proc/self/maps 2>"$WORK/active.err" | grep -q apexalloc; then
    echo "FAIL: active: libapexalloc is not mapped in a preloaded 'cat'" >&2
    cat "$WORK/active.err" >&2
    return 1
  fi
  if grep -q "cannot be preloaded" "$WORK/active.err"; then
    echo "FAIL: active: ld.so could not preload $LIB" >&2
    return 1
  fi
  echo "ok: active: preloaded processes run ApexAlloc $got"
}

status=0
for c in "$@"; do
  case "$c" in
    active) case_active || status=1 ;;
    python3) { need "$PY" && run_twice python3 w_python3; } || status=1 ;;
    sqlite3) { need sqlite3 && run_twice sqlite3 w_sqlite3; } || status=1 ;;
    git) { need git && run_twice git w_git; } || status=1 ;;
    sort) { need sort && run_twice sort w_sort; } || status=1 ;;
    gzip) { need gzip && run_twice gzip w_gzip; } || status=1 ;;
    awk) { need awk && run_twice awk w_awk; } || status=1 ;;
    *)
      echo "unknown case '$c'" >&2
      status=2
      ;;
  esac
done
exit $status
