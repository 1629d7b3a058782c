#!/usr/bin/env bash
# Real programs under LD_PRELOAD=libapexalloc.so in hardened mode (APEX_SECURE=2).
#
#   hardened_programs.sh /path/to/libapexalloc.so [case ...]
#
# Cases: active bash sh cc clang ssh curl git python3 make cmake sqlite3 sort gzip
# (default: all of them). Like tests/preload_programs.sh, each program case runs one deterministic
# workload twice in fresh directories, once plainly and once with LD_PRELOAD and APEX_SECURE=2, and
# passes only if both runs exit 0, print exactly the same standard output, and the preloaded run
# says nothing on stderr about ApexAlloc or a failed preload. Every process a workload starts (the
# compiler's cc1 and as, git's helpers, the pipeline stages) inherits the preload. The workloads are
# kept small: hardened mode is about correctness here, and the preload label has the heavy ones.
# The case "active" checks that hardened mode is really on in a preloaded process.
set -u -o pipefail

if [ $# -lt 1 ]; then
  echo "usage: $0 /path/to/libapexalloc.so [case ...]" >&2
  exit 2
fi
. "$(cd "$(dirname "$0")/.." && pwd)/programs_lib.sh"   # the shared harness: programs_init, need, run_twice
programs_init hardened "$1"
shift
if [ $# -eq 0 ]; then set -- active bash sh cc clang ssh curl git python3 make cmake sqlite3 sort gzip; fi
PRELOAD_MODE=hardened PRELOAD_WHAT="under APEX_SECURE=2" PRELOAD_ENV=("LD_PRELOAD=$LIB" "APEX_SECURE=2")

# ---- workloads: each prints deterministic text on stdout ------------------------------------------

w_bash() {
  bash -c '
    declare -A squares
    for i in $(seq 1 3000); do squares[k$i]=$((i * i)); done
    s=""; for i in $(seq 1 3000); do s+="${squares[k$i]},"; done
    echo "assoc ${#squares[@]} joined ${#s}"
    words=($(seq 1 2000)); echo "array ${#words[@]}"
    printf "%s\n" "${words[@]}" | sort -rn | head -n 3
    up=$(for i in $(seq 1 300); do echo "line $i"; done | tr a-z A-Z | grep -c LINE); echo "upper $up"
    f() { local x=$1; [ "$x" -le 1 ] && echo 1 && return; echo $((x * $(f $((x - 1))))); }; echo "fact $(f 12)"'
}

w_sh() {
  sh -c '
    seq 1 20000 | awk "{ print \$1 * 3 % 1000 }" | sort -n | uniq -c | sort -rn | head -n 3
    i=0; while [ $i -lt 2000 ]; do i=$((i + 1)); done; echo "loop $i"
    echo "hello world" | sed "s/world/apexalloc/" | cut -c1-11 | rev | tr a-z A-Z
    for f in a b c; do echo "$f$f$f" > "file.$f"; done; cat file.* | wc -c'
}

c_program() {
  cat > prog.c <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
struct node { struct node *next; char text[40]; };
int main(void) {
  struct node *head = NULL;
  for (int i = 0; i < 20000; i++) {
    struct node *n = malloc(sizeof *n);
    if (!n) return 1;
    snprintf(n->text, sizeof n->text, "node %d", i);
    n->next = head;
    head = n;
  }
  unsigned long sum = 0;
  char *joined = NULL; size_t len = 0;
  for (struct node *n = head; n; n = n->next) {
    sum += strlen(n->text);
    if (len < 100000) { joined = realloc(joined, len + 41); memcpy(joined + len, n->text, 40); len += 40; }
  }
  while (head) { struct node *next = head->next; free(head); head = next; }
  printf("nodes 20000 chars %lu joined %zu\n", sum, len);
  free(joined);
  return 0;
}
EOF
}

w_cc() {
  c_program
  cc -O2 -Wall -Wextra -o prog prog.c
  ./prog
  cc -E -P prog.c | grep -c "struct node"
}

w_clang() {
  c_program
  clang -O2 -Wall -Wextra -o prog prog.c
  ./prog
}

w_ssh() {
  ssh -V 2>&1
  ssh-keygen -q -t ed25519 -N "" -C apex -f key
  ssh-keygen -l -f key.pub | awk '{ print $1, $3, $4 }'
  ssh-keygen -y -f key | cut -d" " -f1
  ssh -G -F /dev/null -o User=apex example.invalid | grep -E "^(user|hostname|port) "
}

w_curl() {
  curl --version | head -n 1 | cut -d" " -f1-2
  seq 1 50000 > data.txt
  curl -s "file://$PWD/data.txt" | cksum
  curl -s "file://$PWD/data.txt" -o copy.txt && cmp data.txt copy.txt && echo "file copy ok"
}

w_git() {
  export HOME="$PWD" GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
  export GIT_AUTHOR_NAME="Apex Tester" GIT_AUTHOR_EMAIL="tester@apexalloc.invalid"
  export GIT_COMMITTER_NAME="Apex Tester" GIT_COMMITTER_EMAIL="tester@apexalloc.invalid"
  git -c init.defaultBranch=main init -q repo
  cd repo
  git config gc.auto 0
  for c in 1 2 3; do
    export GIT_AUTHOR_DATE="2024-01-0${c}T12:00:00Z" GIT_COMMITTER_DATE="2024-01-0${c}T12:00:00Z"
    seq "$c" 3 3000 > "file$c.txt"
    echo "commit $c" >> README
    git add -A
    git commit -q -m "commit $c"
  done
  git log --stat
  git rev-parse HEAD 'HEAD^{tree}'
  git fsck --full --no-progress
  git diff --stat HEAD~2 HEAD
}

w_python3() {
  PYTHONHASHSEED=0 PYTHONMALLOC=malloc "$PY" -c '
import json, hashlib, threading, zlib
d = {str(i): [i] * (i % 30) for i in range(20000)}
s = json.dumps(d, sort_keys=True)
print("json", len(s), len(json.loads(s)))
print("zlib", len(zlib.compress(s.encode(), 6)), hashlib.sha256(s.encode()).hexdigest()[:16])
out = [None] * 3
def work(k):
    acc = [{"k": k, "i": i, "s": "x" * (i % 50)} for i in range(20000)]
    out[k] = sum(len(a["s"]) for a in acc)
ts = [threading.Thread(target=work, args=(k,)) for k in range(3)]
[t.start() for t in ts]; [t.join() for t in ts]
print("threads", out)
print("sorted", sorted(str(i * 7919 % 10007) for i in range(10000))[:3])'
  # and once with CPython's own small-object allocator on top of ours
  PYTHONHASHSEED=0 "$PY" -c 'print(len({i: str(i) * 3 for i in range(50000)}))'
}

w_make() {
  cat > Makefile <<'EOF'
PARTS := $(addprefix part,$(addsuffix .txt,1 2 3 4 5 6 7 8))
all: total.txt
	@cat total.txt
part%.txt:
	@seq $* $* 2000 > $@
total.txt: $(PARTS)
	@cat $^ | sort -n | awk '{ s += $$1 } END { print "sum", s, "lines", NR }' > $@
	@echo "$(words $(PARTS)) parts, $(subst .txt,,$(notdir $(PARTS)))" >> $@
.PHONY: all
EOF
  make -s
  make -s -q total.txt && echo "up to date"
}

w_cmake() {
  cmake --version | head -n 1
  cat > script.cmake <<'EOF'
set(items "")
foreach(i RANGE 1 2000)
  math(EXPR sq "${i} * ${i}")
  list(APPEND items "item${sq}")
endforeach()
list(LENGTH items n)
list(JOIN items "," joined)
string(LENGTH "${joined}" len)
string(SHA256 digest "${joined}")
string(SUBSTRING "${digest}" 0 16 digest)
list(SORT items)
list(GET items 0 first)
message(STATUS "items ${n} joined ${len} sha256 ${digest} first ${first}")
EOF
  cmake -P script.cmake
  mkdir -p src
  printf 'cmake_minimum_required(VERSION 3.20)\nproject(tiny NONE)\nset(V "a;b;c")\nlist(REVERSE V)\nmessage(STATUS "tiny ${V}")\nconfigure_file(in.txt out.txt)\n' > src/CMakeLists.txt
  echo 'project @PROJECT_NAME@' > src/in.txt
  cmake -S src -B bld | grep -E "^-- tiny"
  cat bld/out.txt
}

w_sqlite3() {
  sqlite3 test.db <<'SQL'
CREATE TABLE t(id INTEGER PRIMARY KEY, grp INTEGER, name TEXT, data BLOB);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 8000)
INSERT INTO t SELECT x, x % 37, printf('name-%06d-%s', x, substr(hex(x * x), 1, 1 + x % 12)), zeroblob(x % 200) FROM c;
CREATE INDEX t_grp ON t(grp, name);
SELECT count(*), sum(grp), max(length(name)), sum(length(data)) FROM t;
SELECT grp, count(*), min(name) FROM t GROUP BY grp ORDER BY grp LIMIT 5;
UPDATE t SET name = upper(name) WHERE id % 3 = 0;
DELETE FROM t WHERE id % 5 = 0;
SELECT count(*), sum(length(name)) FROM t;
VACUUM;
PRAGMA integrity_check;
SQL
}

gen_lines() {
  awk -v n="$1" 'BEGIN { x = 12345; for (i = 0; i < n; i++) { x = (x * 1103515245 + 12345) % 2147483648;
    printf "%08d %d key%05d\n", x % 100000000, i, x % 5000 } }'
}

w_sort() {
  gen_lines 40000 > in.txt
  sort in.txt | cksum
  sort -n -k2,2 -r in.txt | head -n 2
  sort -u -k3,3 in.txt | wc -l
}

w_gzip() {
  gen_lines 40000 > in.txt
  gzip -6 -c in.txt > in.txt.gz
  gzip -dc in.txt.gz | cmp - in.txt && echo "gzip round trip ok"
  gzip -9 -c in.txt | gzip -dc | cksum
}

# ---- the cases (run_twice: tests/programs_lib.sh) ---------------------------------------------

# Hardened mode is on in a preloaded process: opt.secure reads 2, and malloc's usable size is the
# requested size (at level 1 it is the size class's, 32 for a 20-byte request).
case_active() {
  need "$PY" || return 1
  local got
  got=$(LD_PRELOAD="$LIB" APEX_SECURE=2 "$PY" -c '
import ctypes
c = ctypes.CDLL(None)
level = ctypes.c_size_t(0); size = ctypes.c_size_t(ctypes.sizeof(level))
assert c.apex_ctl(b"opt.secure", ctypes.byref(level), ctypes.byref(size), None, 0) == 0
c.malloc.restype = ctypes.c_void_p; c.malloc.argtypes = [ctypes.c_size_t]
c.malloc_usable_size.restype = ctypes.c_size_t; c.malloc_usable_size.argtypes = [ctypes.c_void_p]
c.free.argtypes = [ctypes.c_void_p]
p = c.malloc(20)
print(level.value, c.malloc_usable_size(p))
c.free(p)' 2>"$WORK/active.err")
  if [ "$got" != "2 20" ]; then
    echo "FAIL: active: a preloaded python3 with APEX_SECURE=2 says 'level usable' = '$got', want '2 20'" >&2
    cat "$WORK/active.err" >&2
    return 1
  fi
  echo "ok: active: preloaded processes run ApexAlloc in hardened mode"
}

status=0
for c in "$@"; do
  case "$c" in
    active) case_active || status=1 ;;
    bash|sh|git|make|cmake|sqlite3|sort|gzip|ssh|curl|clang) { need "$c" && run_twice "$c" "w_$c"; } || status=1 ;;
    cc) { need cc && run_twice cc w_cc; } || status=1 ;;
    python3) { need "$PY" && run_twice python3 w_python3; } || status=1 ;;
    *)
      echo "unknown case '$c'" >&2
      status=2
      ;;
  esac
done
exit $status
