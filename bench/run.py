#!/usr/bin/env python3
"""Run the ApexAlloc benchmark workloads under several allocators, side by side.

Two modes:
  --mode wall (default)   every workload binary (built from bench/*.c, target bench_all) is run N
        times under each allocator, chosen with LD_PRELOAD (glibc: no preload), so all allocators
        run the very same binary. Within a round every workload is run once under every
        allocator, the order of the allocators rotating from round to round, so that slow drifts
        of the machine are shared. Wall time and peak RSS (ru_maxrss of the child, from wait4) are
        recorded; medians are reported.
  --mode instructions     the single-threaded workloads run under callgrind, which counts the
        instructions executed inside the allocator's entry points (bench/callgrind.py): a number
        that does not depend on what else the machine is doing.

Outputs (in --out-dir, default docs/):
  BENCHMARKS.md               one section per mode; a mode rewrites only its own section
  bench.png                   (wall) time and peak RSS normalised to glibc
  bench-data/wall.csv         (wall) every run: workload, allocator, round, status, time, peak RSS
  bench-data/instructions.csv (instructions) every callgrind run and its counts
No path of the machine goes into them: allocators are named, not their files.

Needs Python >= 3.9, valgrind for the instructions mode and matplotlib for the chart. Debian's
python3-matplotlib is visible to /usr/bin/python3 only; if the python3 running this script cannot
import matplotlib but /usr/bin/python3 can, the script re-executes itself with /usr/bin/python3.

See bench/README.md.
"""
from __future__ import annotations

import argparse
import csv
import datetime as _dt
import glob
import json
import math
import os
import platform
import re
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(BENCH_DIR)
sys.path.insert(0, BENCH_DIR)
import callgrind  # noqa: E402  (bench/callgrind.py)
SYSTEM_PYTHON = "/usr/bin/python3"
LIBDIR = "/usr/lib/x86_64-linux-gnu"
BUSY_LOAD = 0.5  # 1-minute load average above which the machine is reported as busy


def _find_matplotlib() -> bool:
    """True if matplotlib can be imported; may re-exec under the system Python to get it."""
    try:
        import matplotlib  # noqa: F401
        return True
    except ImportError:
        pass
    if os.environ.get("APEX_BENCH_REEXEC") or not os.path.exists(SYSTEM_PYTHON):
        return False
    if os.path.realpath(sys.executable) == os.path.realpath(SYSTEM_PYTHON):
        return False
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import matplotlib"], capture_output=True)
    if probe.returncode != 0:
        return False
    print(f"run.py: {sys.executable} has no matplotlib; re-running under {SYSTEM_PYTHON}",
          file=sys.stderr)
    os.environ["APEX_BENCH_REEXEC"] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(SYSTEM_PYTHON, [SYSTEM_PYTHON, os.path.abspath(__file__)] + sys.argv[1:])
    return False  # not reached


# ---- Workloads and allocators -----------------------------------------------------------------

@dataclass
class Workload:
    name: str
    binary: str
    args: list[str]          # wall mode
    quick_args: list[str]    # wall mode, --quick
    what: str
    # Instructions mode (single-threaded workloads only; None: not measured there). For
    # random-replace (pairs=True) the one argument is N: runs of N and 2N steps are differenced.
    cg_args: list[str] | None = None
    cg_quick_args: list[str] | None = None
    pairs: bool = False


WORKLOADS = [
    Workload("larson", "bench_larson", [], ["2", "800000"],
             "server simulation: 2 threads replace random objects (16..1000 B) of a shared table; "
             "new threads every round, so objects are freed by other (often exited) threads"),
    Workload("xmalloc", "bench_xmalloc", [], ["4", "300000"],
             "2 producers allocate small objects (8..512 B) and pass them through a queue to "
             "2 consumers that free them: every free is a remote free"),
    Workload("prodcons", "bench_prodcons", ["2"], ["2", "600000"],
             "one thread allocates (16..256 B) and hands every object through lock-free rings to "
             "2 consumer threads that free it: remote frees from a single producer"),
    Workload("cache-scratch", "bench_cache_scratch", [], ["2", "1500"],
             "passive false sharing: 2 threads free an object handed to them by the main thread, "
             "then repeatedly allocate 8 B and write to it; time shows cache-line sharing"),
    Workload("mstress", "bench_mstress", [], ["4", "30000"],
             "4 threads, sizes 8 B..4 MiB skewed small, objects swapped between threads through a "
             "transfer table, some kept across rounds"),
    Workload("malloc-simple", "bench_malloc_loop", ["1"], ["1", "2000000"],
             "tight malloc/free loop of small sizes (16..1024 B, batches of 1..1024), 1 thread",
             cg_args=["1", "400000"], cg_quick_args=["1", "41000"]),
    Workload("malloc-thread", "bench_malloc_loop", ["2"], ["2", "2000000"],
             "the same loop in 2 threads at once (nothing shared)"),
    Workload("working-set", "bench_working_set", ["2"], ["2", "300000"],
             "each thread replaces random objects of its own working set of 1,024 with fresh "
             "random sizes (16 B..32 KiB, skewed small); 2 threads (instructions mode: 1)",
             cg_args=["1", "300000"], cg_quick_args=["1", "30000"]),
    Workload("mixed", "bench_mixed", ["1"], ["1", "250000"],
             "malloc, calloc, realloc or free at random on 2,048 slots, sizes log-uniform "
             "8 B..64 KiB and a few up to 512 KiB, 1 thread",
             cg_args=["1", "30000"], cg_quick_args=["1", "3000"]),
    Workload("mixed-mt", "bench_mixed", ["2", "1200000"], ["2", "120000"],
             "the same mixed test in 2 threads at once (nothing shared)"),
    Workload("bigint", "bench_bigint", [], ["25"],
             "integer factoring (Pollard's rho) on heap-allocated big numbers: ~27 million tiny "
             "(8..40 B) short-lived objects, 1 thread",
             cg_args=["6"], cg_quick_args=["1"]),
    Workload("random-replace", "bench_random_replace", ["3000000"], ["300000"],
             "4,096 live objects of 8 B..4 KiB (log-uniform); each step frees a random one and "
             "allocates a new one in its place, 1 thread",
             cg_args=["200000"], cg_quick_args=["20000"], pairs=True),
    Workload("realloc", "bench_realloc", [], ["1", "3"],
             "8 interleaved strings grown by realloc to ~1 MiB, append by append, then shrunk "
             "back by halving",
             cg_args=["1", "1"], cg_quick_args=["1", "1", "2"]),
    Workload("fragmentation", "bench_fragmentation", [], ["1", "1"],
             "allocate small objects, free every other one, allocate larger ones, free a random "
             "half, refill: peak RSS is the number to watch",
             cg_args=["1", "1", "100000"], cg_quick_args=["1", "1", "10000"]),
]
WORKLOAD_NAMES = [w.name for w in WORKLOADS]
MODES = ("wall", "instructions")


@dataclass
class Allocator:
    key: str            # name used on the command line and in the CSV files
    label: str          # name shown in tables
    lib: str | None     # library to preload, None for glibc
    env: dict | None = None  # extra environment for the workload (e.g. APEX_SECURE=2)
    version: str = ""
    skipped: str = ""   # reason, when it cannot be used


def scudo_library() -> str:
    """LLVM's standalone scudo as Debian's libclang-rt-NN-dev installs it (newest LLVM first)."""
    found = sorted(glob.glob("/usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.scudo_standalone-x86_64.so"),
                   key=lambda p: [int(x) if x.isdigit() else x for x in re.split(r"[-/.]", p)])
    return found[-1] if found else "/usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.scudo_standalone-x86_64.so"


DEFAULT_ALLOCATORS = "apex,apex-hardened,glibc,jemalloc,mimalloc,tcmalloc,scudo"
HARDENED = {"APEX_SECURE": "2"}


def default_allocators(build_dir: str, apex: str | None) -> dict[str, Allocator]:
    apex_lib = apex or os.path.join(build_dir, "core", "libapexalloc.so")
    base_lib = os.path.join(build_dir, "core", "libapexalloc-baseline.so")
    return {
        "apex": Allocator("apex", "ApexAlloc", apex_lib),
        # The hardened mode of the same library (docs/SECURITY.md).
        "apex-hardened": Allocator("apex-hardened", "ApexAlloc hardened", apex_lib, env=dict(HARDENED)),
        "glibc": Allocator("glibc", "glibc", None),
        "jemalloc": Allocator("jemalloc", "jemalloc", os.path.join(LIBDIR, "libjemalloc.so.2")),
        "mimalloc": Allocator("mimalloc", "mimalloc", os.path.join(LIBDIR, "libmimalloc.so.2")),
        "tcmalloc": Allocator("tcmalloc", "tcmalloc", os.path.join(LIBDIR, "libtcmalloc_minimal.so.4")),
        # LLVM's standalone scudo with its default options: the hardened allocator to compare
        # ApexAlloc's hardened mode with.
        "scudo": Allocator("scudo", "scudo", scudo_library()),
        # Not in the default set: ApexAlloc built with the dlopen-safe (global-dynamic) TLS model of
        # its embeddable form, to measure what that choice costs (--allocators apex,apex-gd).
        "apex-gd": Allocator("apex-gd", "ApexAlloc (dlopen-safe TLS)",
                             os.path.join(build_dir, "core", "libapexalloc_tlsgd.so")),
        # The build with the level-1 checks compiled out, for docs/SECURITY.md.
        "apex-nochecks": Allocator("apex-nochecks", "ApexAlloc (checks off)",
                                   os.path.join(build_dir, "core", "libapexalloc_nochecks.so")),
        # An earlier build of ApexAlloc beside the current one, to measure a change side by side:
        # --lib apex-base=/path/to/old/libapexalloc.so (adds apex-base and apex-base-hardened to
        # the default set).
        "apex-base": Allocator("apex-base", "ApexAlloc before", base_lib),
        "apex-base-hardened": Allocator("apex-base-hardened", "ApexAlloc hardened before", base_lib,
                                        env=dict(HARDENED)),
    }


# ---- Running one child ------------------------------------------------------------------------

@dataclass
class Run:
    ok: bool
    wall: float          # seconds
    maxrss_kib: int
    status: str          # "ok", "exit 2", "signal SIGSEGV", "timeout", "preload failed"
    stdout: str
    stderr: str


def run_once(launcher: str, argv: list[str], preload: str | None, timeout: float,
             extra_env: dict | None = None) -> Run:
    """Run argv once through bench_launch, which measures wall time and peak RSS of the child."""
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)  # the launcher itself runs on glibc; it preloads for the child only
    env.update(extra_env or {})
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r", prefix="apex-bench-", suffix=".txt") as res:
        cmd = [launcher, res.name, preload or "-", str(max(1, int(math.ceil(timeout))))] + argv
        try:
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                                  timeout=timeout + 60)
            code = proc.returncode
        except subprocess.TimeoutExpired:
            code = None
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace").strip()
        stderr = err.read().decode(errors="replace").strip()
        line = res.read().strip()
    fields = dict(kv.split("=", 1) for kv in line.split()) if code == 0 and line else {}
    if not fields:
        return Run(False, 0.0, 0, "launcher failed" if code is not None else "launcher hung", stdout, stderr)
    exit_code, sig = int(fields["exit"]), int(fields["signal"])
    if fields["timeout"] == "1":
        status = f"timeout ({timeout:.0f} s)"
    elif "cannot be preloaded" in stderr:
        status = "preload failed"
    elif sig:
        try:
            status = "signal " + signal.Signals(sig).name
        except ValueError:
            status = f"signal {sig}"
    elif exit_code != 0:
        status = f"exit {exit_code}"
    else:
        status = "ok"
    return Run(status == "ok", float(fields["wall"]), int(fields["maxrss_kib"]), status, stdout, stderr)


# ---- Results ----------------------------------------------------------------------------------

@dataclass
class Cell:
    runs: list[Run] = field(default_factory=list)

    @property
    def failed(self) -> list[Run]:
        return [r for r in self.runs if not r.ok]

    @property
    def ok(self) -> bool:
        return bool(self.runs) and not self.failed

    def time(self) -> float:
        return statistics.median(r.wall for r in self.runs)

    def rss_mib(self) -> float:
        return statistics.median(r.maxrss_kib for r in self.runs) / 1024.0

    def spread(self) -> float:
        """Median absolute deviation of the wall times relative to their median, in percent.
        Robust: one run disturbed by other load on the machine barely moves it."""
        t = [r.wall for r in self.runs]
        med = statistics.median(t)
        return 100.0 * statistics.median(abs(x - med) for x in t) / med

    def failure_text(self) -> str:
        f = self.failed
        kinds = sorted({r.status for r in f})
        return f"FAIL: {', '.join(kinds)} ({len(f)}/{len(self.runs)} runs)"


def geomean(xs: list[float]) -> float:
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


# ---- Machine and versions ---------------------------------------------------------------------

def _cmd(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def package_version(path: str) -> str:
    owner = _cmd(["dpkg-query", "-S", os.path.realpath(path)]) or _cmd(["dpkg-query", "-S", path])
    if not owner:
        return ""
    pkg = owner.split(":")[0].strip()
    if not pkg:
        return ""
    ver = _cmd(["dpkg-query", "-W", "-f=${Version}", pkg])
    return f"{pkg} {ver}".strip()


def apex_version(a: Allocator, current: str) -> str:
    """The version of an ApexAlloc variant: the checkout's for the library of this build, the
    file name (never the path) for another build such as apex-base."""
    if os.path.realpath(a.lib or "") != os.path.realpath(current):
        return f"another build: `{os.path.basename(a.lib or '')}`"
    ver = "?"
    try:
        with open(os.path.join(REPO_DIR, "include", "apexalloc.h")) as f:
            text = f.read()
        import re
        parts = [re.search(rf"APEX_VERSION_{p}\s*=\s*(\d+)", text) for p in ("MAJOR", "MINOR", "PATCH")]
        if all(parts):
            ver = ".".join(m.group(1) for m in parts)
    except OSError:
        pass
    rev = _cmd(["git", "-C", REPO_DIR, "rev-parse", "--short", "HEAD"]) or "no commit"
    dirty = _cmd(["git", "-C", REPO_DIR, "status", "--porcelain", "--", "core", "include"])
    return f"{ver} (git {rev}{', with uncommitted changes in core/ or include/' if dirty else ''})"


def build_info(build_dir: str) -> str:
    cache = os.path.join(build_dir, "CMakeCache.txt")
    compiler, btype = "", ""
    try:
        with open(cache) as f:
            for line in f:
                if line.startswith("CMAKE_C_COMPILER:"):
                    compiler = line.split("=", 1)[1].strip()
                elif line.startswith("CMAKE_BUILD_TYPE:"):
                    btype = line.split("=", 1)[1].strip()
    except OSError:
        pass
    cc = _cmd([compiler or "cc", "--version"]).splitlines()
    return f"{cc[0] if cc else 'unknown compiler'}, CMake build type {btype or '?'}, workloads at -O2"


def machine_info() -> list[tuple[str, str]]:
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        glibc = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError):
        glibc = " ".join(platform.libc_ver())
    try:
        with open("/proc/meminfo") as f:
            mem_kib = int(f.readline().split()[1])
        mem = f"{mem_kib / 1048576:.1f} GiB"
    except (OSError, ValueError, IndexError):
        mem = "?"
    return [
        ("date", _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
        ("CPU", cpu_model()),
        ("nproc", f"{affinity} (of {os.cpu_count()} online)"),
        ("memory", mem),
        ("kernel", f"{platform.system()} {platform.release()}"),
        ("C library", glibc),
        ("python", platform.python_version()),
    ]


# ---- Output -----------------------------------------------------------------------------------

def fmt_ratio(x: float) -> str:
    return f"{x:.2f}"


# An absolute path of this machine (/usr/..., /work/..., /tmp/..., the checkout): must never reach
# the generated files, which are committed.
_MACHINE_PATH = re.compile(r"(?<![\w.~-])/(?:[\w.+-]+/)+[\w.+-]*")


def scrub(text: str) -> str:
    """Replace every absolute path in text by its last component, after an ellipsis."""
    return _MACHINE_PATH.sub(lambda m: "…/" + os.path.basename(m.group(0).rstrip("/")), text)


def check_no_paths(path: str) -> None:
    with open(path) as f:
        text = f.read()
    leaks = sorted(set(_MACHINE_PATH.findall(text)) | ({REPO_DIR} if REPO_DIR in text else set()))
    if leaks:
        sys.exit(f"run.py: internal error: {path} would contain paths of this machine: {', '.join(leaks)}")


def header_lines(mode: str, command: str, machine: list[tuple[str, str]], build: str,
                 allocs: list[Allocator], skipped: list[Allocator], extra: list[tuple[str, str]]) -> list[str]:
    L = [f"From the repository root:\n\n```\n{command}\n```\n"]
    L.append("| machine | |\n|---|---|")
    for k, v in machine + extra:
        L.append(f"| {k} | {v} |")
    L.append(f"| build | {build} |\n")
    L.append("| allocator | key (CSV) | version |\n|---|---|---|")
    for a in allocs:
        env = " ".join(f"{k}={v}" for k, v in (a.env or {}).items())
        L.append(f"| {a.label}{f' (`{env}`)' if env else ''} | `{a.key}` | {a.version} |")
    L.append("")
    for a in skipped:
        L.append(f"**{a.label} was skipped:** {scrub(a.skipped)}\n")
    return L


def ratio_matrix(allocs: list[Allocator], workloads: list[Workload], value, what: str) -> list[str]:
    """Geometric mean, over the workloads where both sides have a value, of row / column, for
    every ApexAlloc variant as a row against every allocator as a column."""
    rows = [a for a in allocs if a.key.startswith("apex")]
    if not rows:
        return []
    cols = allocs
    L = [f"| {what}: row / column | " + " | ".join(c.label for c in cols) + " |",
         "|---|" + "---:|" * len(cols)]
    for r in rows:
        cells = []
        for c in cols:
            if c is r:
                cells.append("—")
                continue
            xs = [value(w, r) / value(w, c) for w in workloads
                  if value(w, r) is not None and value(w, c) is not None]
            cells.append(fmt_ratio(geomean(xs)) if xs else "n/a")
        L.append(f"| {r.label} | " + " | ".join(cells) + " |")
    L.append("")
    return L


def wall_section(*, command: str, machine: list[tuple[str, str]], build: str, load: tuple[float, float],
                 allocs: list[Allocator], skipped: list[Allocator], workloads: list[Workload],
                 cells: dict[tuple[str, str], Cell], ref: Allocator, runs: int, quick: bool,
                 chart: str | None, elapsed: float, csv_name: str) -> list[str]:
    L: list[str] = ["## Wall time and peak RSS\n"]
    if quick:
        L.append("> **Quick smoke run** (`--quick`): reduced iterations. These numbers only show that "
                 "everything runs; do not compare allocators with them.\n")
    L.append(f"Each workload ran {runs} time(s) under each allocator; within a round every allocator ran "
             "each workload once, in an order rotated from round to round. **Time** is the median wall "
             "time of the process (start to exit), **peak RSS** the median of the child's `ru_maxrss`. "
             "**±** is the median absolute deviation of the wall times, relative to their median. "
             f"Suite wall time: {elapsed:.0f} s. Every run: [{csv_name}]({csv_name}).\n")
    L += header_lines("wall", command, machine, build, allocs, skipped,
                      [("load average (1 min)", f"{load[0]:.2f} before the suite, {load[1]:.2f} after it")])
    if load[0] > BUSY_LOAD:
        L.append(f"> **Warning:** the machine was busy when the suite started (load average "
                 f"{load[0]:.2f}); other work competes with the workloads and the numbers are noisier "
                 "than they should be.\n")

    L.append("### Summary\n")
    L.append("Geometric mean over the workloads of the ratio row / column (below 1: the row is faster / "
             "smaller). Workloads where either side failed are left out.\n")
    time_of = lambda w, a: cells[(w.name, a.key)].time() if cells[(w.name, a.key)].ok else None  # noqa: E731
    rss_of = lambda w, a: cells[(w.name, a.key)].rss_mib() if cells[(w.name, a.key)].ok else None  # noqa: E731
    L += ratio_matrix(allocs, workloads, time_of, "time")
    L += ratio_matrix(allocs, workloads, rss_of, "peak RSS")
    failures = [(w, a) for w in workloads for a in allocs if not cells[(w.name, a.key)].ok]
    if failures:
        L.append("**Failures:** " + "; ".join(
            f"{w.name} under {a.label} ({cells[(w.name, a.key)].failure_text()})" for w, a in failures) + "\n")
    if chart:
        L.append(f"![time and peak RSS normalised to glibc]({chart})\n")

    L.append("### Workloads\n")
    L.append(f"In each table the ratio columns are the allocator's value divided by {ref.label}'s "
             f"(above 1: slower / bigger than {ref.label}).\n")
    for w in workloads:
        args = " ".join(w.quick_args if quick else w.args)
        L.append(f"#### {w.name}\n")
        L.append(f"{w.what}. `{w.binary}{(' ' + args) if args else ''}`\n")
        L.append(f"| allocator | time (s) | time / {ref.label} | ± | peak RSS (MiB) | RSS / {ref.label} |")
        L.append("|---|---:|---:|---:|---:|---:|")
        c_ref = cells[(w.name, ref.key)]
        for a in allocs:
            c = cells[(w.name, a.key)]
            if not c.ok:
                L.append(f"| {a.label} | **{c.failure_text()}** | | | | |")
                continue
            tr = fmt_ratio(c.time() / c_ref.time()) if c_ref.ok else "n/a"
            rr = fmt_ratio(c.rss_mib() / c_ref.rss_mib()) if c_ref.ok else "n/a"
            L.append(f"| {a.label} | {c.time():.3f} | {tr} | {c.spread():.1f} % | {c.rss_mib():.1f} | {rr} |")
        L.append("")
    return L


@dataclass
class CgCell:
    """Callgrind runs of one (workload, allocator): for a pairs workload, (N, 2N) run pairs."""
    counts: list = field(default_factory=list)   # callgrind.Count, or (Count, Count) for pairs
    status: str = "ok"

    @property
    def ok(self) -> bool:
        return bool(self.counts) and self.status == "ok"


def cg_per_call(c: CgCell) -> float | None:
    """Median over runs of the allocator's instructions per call of an entry point."""
    if not c.ok:
        return None
    return statistics.median(x.alloc_instr / x.alloc_calls for x in c.counts)


def cg_pair(c: CgCell, steps: int):
    if not c.ok:
        return None
    costs = [callgrind.pair_cost(small, large, steps) for small, large in c.counts]
    return callgrind.PairCost(*(statistics.median(getattr(x, f) for x in costs)
                                for f in ("pair", "malloc", "free", "with_loop")))


def instructions_section(*, command: str, machine: list[tuple[str, str]], build: str,
                         allocs: list[Allocator], skipped: list[Allocator], workloads: list[Workload],
                         cells: dict[tuple[str, str], CgCell], ref: Allocator, runs: int, quick: bool,
                         elapsed: float, csv_name: str, valgrind: str) -> list[str]:
    L: list[str] = ["## Instructions (callgrind)\n"]
    if quick:
        L.append("> **Quick smoke run** (`--quick`): reduced iterations; start-up weighs more in these "
                 "counts than in a full run.\n")
    L.append("Instructions executed **inside the allocator** (the inclusive cost of the calls the workload "
             "makes to `malloc`, `free`, `calloc` and `realloc`, counted by callgrind; the workload's own "
             "work is not included). Counts do not depend on the load of the machine; they are "
             "instructions, not time (a cache miss costs one). How they are obtained: "
             "[bench/README.md](../bench/README.md#instructions-mode). "
             f"{runs} run(s) per cell, medians. Suite wall time: {elapsed:.0f} s. "
             f"Every run: [{csv_name}]({csv_name}).\n")
    L += header_lines("instructions", command, machine, build, allocs, skipped, [("valgrind", valgrind)])

    pair_w = [w for w in workloads if w.pairs]
    call_w = [w for w in workloads if not w.pairs]
    for w in pair_w:
        steps = int((w.cg_quick_args if quick else w.cg_args)[0])
        L.append(f"### Fast path: {w.name}\n")
        L.append(f"{w.what}. Steady state: the counts of a run of {2 * steps:,} steps minus those of a "
                 f"run of {steps:,} steps, divided by {steps:,}, so start-up cancels. *With the loop* "
                 "is the whole process on the same difference (also printed by `bench/count_fastpath.sh`): "
                 "the loop's own work is the same for every allocator.\n")
        L.append(f"| allocator | malloc+free pair | malloc | free | with the loop | pair / {ref.label} |")
        L.append("|---|---:|---:|---:|---:|---:|")
        ref_cost = cg_pair(cells[(w.name, ref.key)], steps)
        for a in allocs:
            c = cells[(w.name, a.key)]
            pc = cg_pair(c, steps)
            if pc is None:
                L.append(f"| {a.label} | **FAIL: {c.status}** | | | | |")
                continue
            rr = fmt_ratio(pc.pair / ref_cost.pair) if ref_cost else "n/a"
            L.append(f"| {a.label} | {pc.pair:.1f} | {pc.malloc:.1f} | {pc.free:.1f} | {pc.with_loop:.1f} | {rr} |")
        L.append("")
    if call_w:
        L.append("### Instructions per allocator call\n")
        L.append("Instructions inside the allocator divided by the number of calls the workload made to "
                 "it (all entry points together), over the whole run; in parentheses the share of the "
                 "process's instructions spent in the allocator. Arguments: " +
                 ", ".join(f"{w.name} `{' '.join(w.cg_quick_args if quick else w.cg_args)}`" for w in call_w) +
                 ".\n")
        L.append("| allocator | " + " | ".join(w.name for w in call_w) + " |")
        L.append("|---|" + "---:|" * len(call_w))
        for a in allocs:
            row = []
            for w in call_w:
                c = cells[(w.name, a.key)]
                v = cg_per_call(c)
                if v is None:
                    row.append(f"**FAIL: {c.status}**")
                else:
                    share = statistics.median(x.alloc_instr / x.total for x in c.counts)
                    row.append(f"{v:.1f} ({100 * share:.0f} %)")
            L.append(f"| {a.label} | " + " | ".join(row) + " |")
        L.append("")

    L.append("### Summary\n")
    L.append("Geometric mean over the workloads above (random-replace: per pair; the others: per call) "
             "of the instructions of row / column.\n")

    def value(w, a):
        c = cells[(w.name, a.key)]
        if w.pairs:
            pc = cg_pair(c, int((w.cg_quick_args if quick else w.cg_args)[0]))
            return pc.pair if pc else None
        return cg_per_call(c)
    L += ratio_matrix(allocs, workloads, value, "instructions")
    return L


SECTION_BEGIN = "<!-- BEGIN {mode}: generated by bench/run.py --mode {mode}; do not edit by hand -->"
SECTION_END = "<!-- END {mode} -->"


def update_markdown(path: str, mode: str, body: list[str]) -> None:
    """Write this mode's section of BENCHMARKS.md, keeping the other mode's section as it is."""
    sections = {m: [f"## {'Wall time and peak RSS' if m == 'wall' else 'Instructions (callgrind)'}\n",
                    f"Not generated yet: run `python3 bench/run.py --mode {m}`.\n"] for m in MODES}
    try:
        with open(path) as f:
            old = f.read()
    except OSError:
        old = ""
    for m in MODES:
        b, e = SECTION_BEGIN.format(mode=m), SECTION_END.format(mode=m)
        if b in old and e in old:
            sections[m] = [old[old.index(b) + len(b):old.index(e)].strip("\n") + "\n"]
    sections[mode] = body
    L = ["# ApexAlloc benchmarks\n",
         "Generated by `bench/run.py`: each of its two modes rewrites only its own section of this file "
         "(do not edit by hand; re-run it). What each workload models is described in "
         "[bench/README.md](../bench/README.md).\n",
         "- [Wall time and peak RSS](#wall-time-and-peak-rss) (`--mode wall`): every workload, "
         "medians of several interleaved runs; every run in [bench-data/wall.csv](bench-data/wall.csv).",
         "- [Instructions](#instructions-callgrind) (`--mode instructions`): the single-threaded "
         "workloads under callgrind, instructions inside the allocator; every run in "
         "[bench-data/instructions.csv](bench-data/instructions.csv).\n"]
    for m in MODES:
        L += [SECTION_BEGIN.format(mode=m), ""] + sections[m] + [SECTION_END.format(mode=m), ""]
    with open(path, "w") as f:
        f.write("\n".join(L))


def write_chart(path: str, workloads: list[Workload], allocs: list[Allocator],
                cells: dict[tuple[str, str], Cell], quick: bool) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base = next((a for a in allocs if a.key == "glibc"), allocs[0])
    names = [w.name for w in workloads]
    width = 0.8 / len(allocs)
    colors = {"apex": "#d62728", "glibc": "#7f7f7f", "jemalloc": "#1f77b4",
              "mimalloc": "#2ca02c", "tcmalloc": "#ff7f0e", "apex-gd": "#ff9896", "apex-base": "#c5b0d5",
              "apex-nochecks": "#fdd0a2", "apex-hardened": "#67000d",
              "apex-base-hardened": "#8c564b", "scudo": "#9467bd"}
    fig, axes = plt.subplots(2, 1, figsize=(max(9.0, 1.35 * len(names) + 2), 8.5), sharex=True)
    panels = [("time", lambda c: c.time(), f"wall time / {base.label}"),
              ("rss", lambda c: c.rss_mib(), f"peak RSS / {base.label}")]
    for ax, (_, metric, ylabel) in zip(axes, panels):
        top = 1.0
        for i, a in enumerate(allocs):
            xs, ys, fails = [], [], []
            for j, w in enumerate(workloads):
                c, b = cells[(w.name, a.key)], cells[(w.name, base.key)]
                x = j - 0.4 + width * (i + 0.5)
                if c.ok and b.ok:
                    xs.append(x)
                    ys.append(metric(c) / metric(b))
                elif not c.ok:
                    fails.append(x)
            ax.bar(xs, ys, width * 0.92, label=a.label, color=colors.get(a.key))
            top = max([top] + ys)
            for x in fails:
                ax.text(x, 0.02, "FAIL", rotation=90, ha="center", va="bottom", fontsize=8,
                        color=colors.get(a.key, "black"), fontweight="bold")
        ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
        ax.set_ylabel(ylabel + "  (lower is better)")
        ax.set_ylim(0, top * 1.12)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(ncol=len(allocs), loc="upper center", bbox_to_anchor=(0.5, 1.16), frameon=False)
    axes[1].set_xticks(range(len(names)))
    axes[1].set_xticklabels(names, rotation=20, ha="right")
    title = f"Allocators normalised to {base.label} (median of runs)" + ("  [quick smoke run]" if quick else "")
    fig.suptitle(title, y=0.995)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---- Main -------------------------------------------------------------------------------------

def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=f"workloads: {', '.join(WORKLOAD_NAMES)}\n"
                                       "instructions mode: " +
                                       ", ".join(w.name for w in WORKLOADS if w.cg_args) + "\n"
                                       "allocators: " + ", ".join(default_allocators("build", None)))
    p.add_argument("--mode", choices=MODES, default="wall",
                   help="wall: time and peak RSS of every workload; instructions: callgrind counts of "
                        "the single-threaded workloads (default: %(default)s)")
    p.add_argument("--build-dir", default=os.path.join(REPO_DIR, "build"),
                   help="CMake build directory holding bench/bench_* (default: <repo>/build)")
    p.add_argument("--apex", help="path of libapexalloc.so (default: <build-dir>/core/libapexalloc.so)")
    p.add_argument("--lib", action="append", default=[], metavar="NAME=PATH",
                   help="use another library for allocator NAME (repeatable); apex-base=PATH also "
                        "sets apex-base-hardened and adds both to the default set")
    p.add_argument("--only", help="comma-separated workloads to run (default: all of the mode)")
    p.add_argument("--allocators", help=f"comma-separated allocators (default: {DEFAULT_ALLOCATORS})")
    p.add_argument("--runs", type=int,
                   help="runs per (workload, allocator) (wall: default 5, 1 with --quick; "
                        "instructions: default 1, the counts are repeatable)")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: far fewer iterations, 1 run, output to bench/results/quick "
                        "unless --out-dir is given")
    p.add_argument("--out-dir", help="where BENCHMARKS.md, bench.png and bench-data/ go (default: docs/)")
    p.add_argument("--timeout", type=float,
                   help="seconds before a run is killed (default 120; instructions mode 1200)")
    p.add_argument("--no-chart", action="store_true", help="do not draw bench.png")
    return p.parse_args(argv)


def display_command(argv: list[str]) -> str:
    """The command line as run from the repository root, with no path of this machine in it."""
    script = os.path.relpath(os.path.abspath(__file__), REPO_DIR)
    return "python3 " + scrub(shlex.join([script] + argv))


def banner(text: str) -> None:
    bar = "!" * 78
    print(f"{bar}\n" + "\n".join(f"!! {line}" for line in text.splitlines()) + f"\n{bar}", file=sys.stderr)


def probe_wall(a: Allocator, launcher: str, build_dir: str) -> str:
    """Why allocator a cannot be used for wall-time runs ('' if it can)."""
    probe = [os.path.join(build_dir, "bench", "bench_malloc_loop"), "1", "40960"]
    r = run_once(launcher, probe, a.lib, 30.0, a.env)
    if r.status == "preload failed":
        return f"`{os.path.basename(a.lib)}` cannot be preloaded: {r.stderr.splitlines()[0] if r.stderr else ''}"
    return ""


def probe_callgrind(a: Allocator, build_dir: str) -> str:
    """Why allocator a cannot be counted under callgrind ('' if it can)."""
    c = callgrind.count([os.path.join(build_dir, "bench", "bench_random_replace"), "100"], a.lib, a.env, 120)
    if c.ok:
        return ""
    lines = [x for x in c.stderr.splitlines() if x.strip() and not x.startswith("==")]
    why = f"does not run under valgrind ({c.status}{': ' + lines[0].strip() if lines else ''})"
    if a.key == "scudo":
        why += ("; LLVM's scudo reserves about 180 GiB of address space for its primary allocator at "
                "start-up, more than valgrind lets a program map (128 GiB in valgrind 3.19)")
    return why


def run_wall(args, allocs, workloads, build_dir, launcher, runs):
    cells = {(w.name, a.key): Cell() for w in workloads for a in allocs}
    total = runs * len(workloads) * len(allocs)
    done = 0
    width = max(len(a.label) for a in allocs)
    for rnd in range(runs):
        order = allocs[rnd % len(allocs):] + allocs[:rnd % len(allocs)]
        for w in workloads:
            argv_w = [os.path.join(build_dir, "bench", w.binary)] + (w.quick_args if args.quick else w.args)
            for a in order:
                r = run_once(launcher, argv_w, a.lib, args.timeout, a.env)
                cells[(w.name, a.key)].runs.append(r)
                done += 1
                note = f"{r.wall:7.3f} s {r.maxrss_kib / 1024:8.1f} MiB" if r.ok else \
                    f"FAILED: {r.status}" + (f" — {r.stderr.splitlines()[-1]}" if r.stderr else "")
                print(f"[{done:3d}/{total}] round {rnd + 1}/{runs}  {w.name:<14} {a.label:<{width}} {note}",
                      file=sys.stderr, flush=True)
    return cells


def run_instructions(args, allocs, workloads, build_dir, runs):
    cells = {(w.name, a.key): CgCell() for w in workloads for a in allocs}
    total = runs * len(workloads) * len(allocs)
    done = 0
    width = max(len(a.label) for a in allocs)
    for rnd in range(runs):
        for w in workloads:
            wargs = w.cg_quick_args if args.quick else w.cg_args
            binary = os.path.join(build_dir, "bench", w.binary)
            for a in allocs:
                cell = cells[(w.name, a.key)]
                t0 = time.perf_counter()
                if w.pairs:
                    steps = int(wargs[0])
                    got = (callgrind.count([binary, str(steps)], a.lib, a.env, args.timeout),
                           callgrind.count([binary, str(2 * steps)], a.lib, a.env, args.timeout))
                    bad = [x for x in got if not x.ok]
                else:
                    got = callgrind.count([binary] + wargs, a.lib, a.env, args.timeout)
                    bad = [] if got.ok else [got]
                done += 1
                if bad:
                    cell.status = bad[0].status
                    tail = [x for x in bad[0].stderr.splitlines() if x.strip()][-1:]
                    note = f"FAILED: {bad[0].status}" + (f" — {tail[0]}" if tail else "")
                    cell.counts.append(got)
                else:
                    cell.counts.append(got)
                    if w.pairs:
                        pc = callgrind.pair_cost(got[0], got[1], steps)
                        note = f"{pc.pair:8.1f} instructions per pair (malloc {pc.malloc:.1f}, free {pc.free:.1f})"
                    else:
                        note = f"{got.alloc_instr / got.alloc_calls:8.1f} instructions per call"
                print(f"[{done:3d}/{total}] run {rnd + 1}/{runs}  {w.name:<14} {a.label:<{width}} {note}"
                      f"  ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    return cells


def write_wall_csv(path: str, workloads, allocs, cells, quick: bool) -> None:
    with open(path, "w", newline="") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(["workload", "arguments", "allocator", "round", "status", "wall_s", "peak_rss_kib"])
        for w in workloads:
            for a in allocs:
                for i, r in enumerate(cells[(w.name, a.key)].runs):
                    out.writerow([w.name, " ".join(w.quick_args if quick else w.args), a.key, i + 1,
                                  r.status, f"{r.wall:.4f}", r.maxrss_kib])


CG_ENTRIES = ("malloc", "free", "calloc", "realloc")


def write_instructions_csv(path: str, workloads, allocs, cells, quick: bool) -> None:
    with open(path, "w", newline="") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(["workload", "arguments", "allocator", "run", "status", "total_instructions",
                      "allocator_instructions", "allocator_calls"] +
                     [f"{e}_{k}" for e in CG_ENTRIES + ("other",) for k in ("calls", "instructions")])
        for w in workloads:
            wargs = w.cg_quick_args if quick else w.cg_args
            for a in allocs:
                for i, got in enumerate(cells[(w.name, a.key)].counts):
                    if w.pairs:
                        steps = int(wargs[0])
                        pairs = [(str(steps), got[0]), (str(2 * steps), got[1])]
                    else:
                        pairs = [(" ".join(wargs), got)]
                    for arg_text, c in pairs:
                        other_calls = c.alloc_calls - sum(c.calls.get(e, 0) for e in CG_ENTRIES)
                        other_instr = c.alloc_instr - sum(c.instr.get(e, 0) for e in CG_ENTRIES)
                        out.writerow([w.name, arg_text, a.key, i + 1, c.status, c.total, c.alloc_instr,
                                      c.alloc_calls] +
                                     [v for e in CG_ENTRIES for v in (c.calls.get(e, 0), c.instr.get(e, 0))] +
                                     [other_calls, other_instr])


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    instr_mode = args.mode == "instructions"
    have_mpl = False if (args.no_chart or instr_mode) else _find_matplotlib()
    runs = args.runs if args.runs is not None else (1 if args.quick or instr_mode else 5)
    if runs < 1:
        sys.exit("run.py: --runs must be at least 1")
    if args.timeout is None:
        args.timeout = 1200.0 if instr_mode else 120.0
    if args.out_dir:
        out_dir = os.path.abspath(args.out_dir)
    elif args.quick:
        out_dir = os.path.join(REPO_DIR, "bench", "results", "quick")
    else:
        out_dir = os.path.join(REPO_DIR, "docs")
    build_dir = os.path.abspath(args.build_dir)

    workloads = [w for w in WORKLOADS if w.cg_args] if instr_mode else WORKLOADS
    if args.only:
        wanted = [s.strip() for s in args.only.split(",") if s.strip()]
        known = [w.name for w in workloads]
        unknown = [s for s in wanted if s not in known]
        if unknown:
            sys.exit(f"run.py: unknown workload(s) for --mode {args.mode}: {', '.join(unknown)}; "
                     f"known: {', '.join(known)}")
        workloads = [w for w in workloads if w.name in wanted]

    table = default_allocators(build_dir, args.apex)
    for spec in args.lib:
        name, _, path = spec.partition("=")
        if name not in table or not path:
            sys.exit(f"run.py: bad --lib {spec!r}; expected NAME=PATH with NAME in {', '.join(table)}")
        table[name].lib = path
        if name in ("apex", "apex-base"):  # the hardened variant uses the same library
            table[name + "-hardened" if name == "apex-base" else "apex-hardened"].lib = path
    default_set = DEFAULT_ALLOCATORS + (",apex-base,apex-base-hardened"
                                        if any(s.startswith("apex-base=") for s in args.lib) else "")
    chosen = [s.strip() for s in (args.allocators or default_set).split(",") if s.strip()]
    unknown = [s for s in chosen if s not in table]
    if unknown:
        sys.exit(f"run.py: unknown allocator(s) {', '.join(unknown)}; known: {', '.join(table)}")
    if not chosen:
        sys.exit("run.py: no allocators chosen")

    launcher = os.path.join(build_dir, "bench", "bench_launch")
    missing_bins = sorted({os.path.join(build_dir, "bench", b) for b in
                           [w.binary for w in workloads] + ["bench_launch", "bench_malloc_loop",
                                                            "bench_random_replace"]
                           if not os.access(os.path.join(build_dir, "bench", b), os.X_OK)})
    if missing_bins:
        sys.exit("run.py: workload binaries not found:\n  " + "\n  ".join(missing_bins) +
                 f"\nbuild them first:  cmake -S {REPO_DIR} -B {build_dir} -G Ninja && "
                 f"cmake --build {build_dir} --target bench_all   (or pass --build-dir)")
    valgrind = ""
    if instr_mode:
        valgrind = _cmd(["valgrind", "--version"])
        if not valgrind:
            sys.exit("run.py: --mode instructions needs valgrind (apt-get install valgrind)")

    # Check every allocator library: present, loadable by the dynamic linker (and, for the
    # instructions mode, able to run under valgrind). One that is not is skipped with a banner.
    allocs: list[Allocator] = []
    skipped: list[Allocator] = []
    apex_current = table["apex"].lib
    for key in chosen:
        a = table[key]
        if a.lib is not None and not os.path.isfile(a.lib):
            a.skipped = f"library not found at `{a.lib}`"
        elif a.lib is not None:
            a.skipped = probe_wall(a, launcher, build_dir)
        if not a.skipped and instr_mode:
            a.skipped = probe_callgrind(a, build_dir)
        if a.skipped:
            banner(f"SKIPPING {a.label}: {a.skipped}")
            skipped.append(a)
            continue
        if key.startswith("apex"):
            a.version = apex_version(a, apex_current)
        else:
            a.version = package_version(a.lib) if a.lib else os.confstr("CS_GNU_LIBC_VERSION")
        allocs.append(a)
    if not allocs:
        sys.exit("run.py: none of the chosen allocators can be used")
    ref = next((a for a in allocs if a.key == "apex"), None) or \
        next((a for a in allocs if a.key == "glibc"), allocs[0])

    load_start = os.getloadavg()[0]
    if load_start > BUSY_LOAD and not instr_mode:
        print(f"run.py: WARNING: load average is {load_start:.2f} before the suite starts; other work on "
              "the machine will make the numbers noisy", file=sys.stderr)
    t_start = time.perf_counter()
    if instr_mode:
        cells = run_instructions(args, allocs, workloads, build_dir, runs)
    else:
        cells = run_wall(args, allocs, workloads, build_dir, launcher, runs)
    elapsed = time.perf_counter() - t_start
    load_end = os.getloadavg()[0]

    os.makedirs(os.path.join(out_dir, "bench-data"), exist_ok=True)
    csv_name = f"bench-data/{args.mode}.csv"
    csv_path = os.path.join(out_dir, csv_name)
    command = display_command(argv)
    machine = machine_info()
    if instr_mode:
        write_instructions_csv(csv_path, workloads, allocs, cells, args.quick)
        body = instructions_section(command=command, machine=machine, build=build_info(build_dir),
                                    allocs=allocs, skipped=skipped, workloads=workloads, cells=cells,
                                    ref=ref, runs=runs, quick=args.quick, elapsed=elapsed,
                                    csv_name=csv_name, valgrind=valgrind)
        failures = [(w, a) for (w, a), c in cells.items() if not c.ok]
        chart = None
    else:
        chart = None
        if have_mpl:
            write_chart(os.path.join(out_dir, "bench.png"), workloads, allocs, cells, args.quick)
            chart = "bench.png"
        elif not args.no_chart:
            banner(f"matplotlib is not importable from {sys.executable} (nor from {SYSTEM_PYTHON}):\n"
                   f"bench.png NOT written. Install it with `apt-get install python3-matplotlib` (used via\n"
                   f"{SYSTEM_PYTHON}) or `python3 -m pip install matplotlib`, then re-run.")
        write_wall_csv(csv_path, workloads, allocs, cells, args.quick)
        body = wall_section(command=command, machine=machine, build=build_info(build_dir),
                            load=(load_start, load_end), allocs=allocs, skipped=skipped, workloads=workloads,
                            cells=cells, ref=ref, runs=runs, quick=args.quick, chart=chart, elapsed=elapsed,
                            csv_name=csv_name)
        failures = [(w, a) for (w, a), c in cells.items() if not c.ok]
        # Every run with the paths of this machine: never beside the committed files.
        inside_repo = os.path.commonpath([out_dir, REPO_DIR]) == REPO_DIR
        raw_dir = os.path.join(REPO_DIR, "bench", "results") if inside_repo else out_dir
        os.makedirs(raw_dir, exist_ok=True)
        with open(os.path.join(raw_dir, "last-run.json"), "w") as f:
            json.dump({"command": command, "machine": dict(machine),
                       "allocators": {a.key: a.lib for a in allocs},
                       "skipped": {a.key: a.skipped for a in skipped},
                       "runs": {f"{w}/{a}": [vars(r) for r in c.runs] for (w, a), c in cells.items()}},
                      f, indent=1)
    md = os.path.join(out_dir, "BENCHMARKS.md")
    update_markdown(md, args.mode, body)
    check_no_paths(md)
    check_no_paths(csv_path)

    print(f"\nwrote {md} ({args.mode} section) and {csv_path}" +
          (f" and {os.path.join(out_dir, chart)}" if chart else "") + f" ({elapsed:.0f} s)", file=sys.stderr)
    for w, a in failures:
        c = cells[(w, a)]
        if instr_mode:
            print(f"FAILURE: {w} under {table[a].label}: {c.status}", file=sys.stderr)
            continue
        bad = c.failed[0]
        print(f"FAILURE: {w} under {table[a].label}: {c.failure_text()}\n  stderr: {bad.stderr[-500:]}",
              file=sys.stderr)
    if skipped:
        print("SKIPPED: " + ", ".join(f"{a.label} ({a.skipped})" for a in skipped), file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
