#!/usr/bin/env python3
"""Run the ApexAlloc benchmark workloads under several allocators, side by side.

Every workload binary (built from bench/*.c, target bench_all) is run N times under each
allocator. The allocator is chosen with LD_PRELOAD (glibc: no preload), so all allocators run the
very same binary. Within a round every workload is run once under every allocator, the order of
the allocators rotating from round to round, so that slow drifts of the machine are shared.
Wall time and peak RSS (ru_maxrss of the child, from wait4) are recorded; medians are reported.

Outputs (in --out-dir, default docs/):
  BENCHMARKS.md   the command, the machine, one table per workload, geometric means
  bench.png       time and peak RSS of each allocator normalised to glibc
and the raw per-run numbers in bench/results/last-run.json.

Needs Python >= 3.9 and matplotlib for the chart. Debian's python3-matplotlib is visible to
/usr/bin/python3 only; if the python3 running this script cannot import matplotlib but
/usr/bin/python3 can, the script re-executes itself with /usr/bin/python3.

See bench/README.md.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
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
    args: list[str]
    quick_args: list[str]
    what: str


WORKLOADS = [
    Workload("larson", "bench_larson", [], ["2", "800000"],
             "server simulation: 2 threads replace random objects (16..1000 B) of a shared table; "
             "new threads every round, so objects are freed by other (often exited) threads"),
    Workload("xmalloc", "bench_xmalloc", [], ["4", "300000"],
             "2 producers allocate small objects (8..512 B) and pass them through a queue to "
             "2 consumers that free them: every free is a remote free"),
    Workload("cache-scratch", "bench_cache_scratch", [], ["2", "1500"],
             "passive false sharing: 2 threads free an object handed to them by the main thread, "
             "then repeatedly allocate 8 B and write to it; time shows cache-line sharing"),
    Workload("mstress", "bench_mstress", [], ["4", "30000"],
             "4 threads, sizes 8 B..4 MiB skewed small, objects swapped between threads through a "
             "transfer table, some kept across rounds"),
    Workload("malloc-simple", "bench_malloc_loop", ["1"], ["1", "2000000"],
             "tight malloc/free loop of small sizes (16..1024 B, batches of 1..1024), 1 thread"),
    Workload("malloc-thread", "bench_malloc_loop", ["2"], ["2", "2000000"],
             "the same loop in 2 threads at once (nothing shared)"),
    Workload("realloc", "bench_realloc", [], ["1", "3"],
             "8 interleaved strings grown by realloc to ~1 MiB, append by append, then shrunk "
             "back by halving"),
    Workload("fragmentation", "bench_fragmentation", [], ["1", "1"],
             "allocate small objects, free every other one, allocate larger ones, free a random "
             "half, refill: peak RSS is the number to watch"),
]
WORKLOAD_NAMES = [w.name for w in WORKLOADS]


@dataclass
class Allocator:
    key: str            # name used on the command line
    label: str          # name shown in tables
    lib: str | None     # library to preload, None for glibc
    env: dict | None = None  # extra environment for the workload (e.g. APEX_SECURE=2)
    version: str = ""
    skipped: str = ""   # reason, when it cannot be used


def default_allocators(build_dir: str, apex: str | None) -> dict[str, Allocator]:
    return {
        "apex": Allocator("apex", "ApexAlloc", apex or os.path.join(build_dir, "core", "libapexalloc.so")),
        "glibc": Allocator("glibc", "glibc", None),
        "jemalloc": Allocator("jemalloc", "jemalloc", os.path.join(LIBDIR, "libjemalloc.so.2")),
        "mimalloc": Allocator("mimalloc", "mimalloc", os.path.join(LIBDIR, "libmimalloc.so.2")),
        "tcmalloc": Allocator("tcmalloc", "tcmalloc", os.path.join(LIBDIR, "libtcmalloc_minimal.so.4")),
        # Not in the default set: ApexAlloc built with the dlopen-safe (global-dynamic) TLS model of
        # its embeddable form, to measure what that choice costs (--allocators apex,apex-gd).
        "apex-gd": Allocator("apex-gd", "ApexAlloc (dlopen-safe TLS)",
                             os.path.join(build_dir, "core", "libapexalloc_tlsgd.so")),
        # Security levels, for docs/SECURITY.md: the build with the level-1 checks compiled out,
        # and the hardened mode (--allocators apex,apex-nochecks,apex-hardened,mimalloc).
        "apex-nochecks": Allocator("apex-nochecks", "ApexAlloc (checks off)",
                                   os.path.join(build_dir, "core", "libapexalloc_nochecks.so")),
        "apex-hardened": Allocator("apex-hardened", "ApexAlloc (APEX_SECURE=2)",
                                   apex or os.path.join(build_dir, "core", "libapexalloc.so"),
                                   env={"APEX_SECURE": "2"}),
        # An earlier build of ApexAlloc beside the current one, to measure a change side by side:
        # --allocators apex,apex-base,mimalloc --lib apex-base=/path/to/old/libapexalloc.so
        "apex-base": Allocator("apex-base", "ApexAlloc (baseline build)",
                               os.path.join(build_dir, "core", "libapexalloc-baseline.so")),
        "apex-base-hardened": Allocator("apex-base-hardened", "ApexAlloc (baseline build, APEX_SECURE=2)",
                                        os.path.join(build_dir, "core", "libapexalloc-baseline.so"),
                                        env={"APEX_SECURE": "2"}),
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


def apex_version(lib: str) -> str:
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
        ("python", f"{platform.python_version()} ({sys.executable})"),
    ]


# ---- Output -----------------------------------------------------------------------------------

def fmt_ratio(x: float) -> str:
    return f"{x:.2f}"


def write_markdown(path: str, *, command: str, machine: list[tuple[str, str]], build: str,
                   load: tuple[float, float],
                   allocs: list[Allocator], skipped: list[Allocator], workloads: list[Workload],
                   cells: dict[tuple[str, str], Cell], ref: Allocator, runs: int, quick: bool,
                   chart: str | None, elapsed: float) -> None:
    L: list[str] = []
    L.append("# ApexAlloc benchmarks\n")
    L.append("Generated by `bench/run.py` (do not edit by hand; re-run it). What each workload models "
             "is described in [bench/README.md](../bench/README.md).\n")
    if quick:
        L.append("> **Quick smoke run** (`--quick`): reduced iterations. These numbers only show that "
                 "everything runs; do not compare allocators with them.\n")
    L.append("## How this was run\n")
    L.append(f"From the repository root:\n\n```\n{command}\n```\n")
    L.append(f"Each workload ran {runs} time(s) under each allocator; within a round every allocator ran "
             "each workload once, in an order rotated from round to round. **Time** is the median wall "
             "time of the process (start to exit), **peak RSS** the median of the child's `ru_maxrss`. "
             "**±** is the median absolute deviation of the wall times, relative to their median. "
             f"Suite wall time: {elapsed:.0f} s.\n")
    L.append("| machine | |\n|---|---|")
    for k, v in machine:
        L.append(f"| {k} | {v} |")
    L.append(f"| build | {build} |")
    L.append(f"| load average (1 min) | {load[0]:.2f} before the suite, {load[1]:.2f} after it |\n")
    if load[0] > BUSY_LOAD:
        L.append(f"> **Warning:** the machine was busy when the suite started (load average "
                 f"{load[0]:.2f}); other work competes with the workloads and the numbers are noisier "
                 "than they should be.\n")
    L.append("| allocator | library (LD_PRELOAD) | version |\n|---|---|---|")
    for a in allocs:
        L.append(f"| {a.label} | {('`' + a.lib + '`') if a.lib else '(none: the C library)'} | {a.version} |")
    L.append("")
    for a in skipped:
        L.append(f"**{a.label} was skipped:** {a.skipped}\n")

    others = [a for a in allocs if a is not ref]
    L.append("## Summary\n")
    if ref.key != "apex":
        L.append(f"ApexAlloc was not part of this run, so ratios are taken against **{ref.label}**.\n")
    L.append(f"Geometric mean over the workloads of the ratio {ref.label} / other allocator "
             "(below 1: " + ref.label + " is faster / smaller). Workloads where either side failed are "
             "left out.\n")
    L.append(f"| {ref.label} / … | time | peak RSS | workloads |\n|---|---:|---:|---:|")
    for a in others:
        tr, rr = [], []
        for w in workloads:
            c_ref, c_a = cells[(w.name, ref.key)], cells[(w.name, a.key)]
            if c_ref.ok and c_a.ok:
                tr.append(c_ref.time() / c_a.time())
                rr.append(c_ref.rss_mib() / c_a.rss_mib())
        if tr:
            L.append(f"| {a.label} | {fmt_ratio(geomean(tr))} | {fmt_ratio(geomean(rr))} | {len(tr)} |")
        else:
            L.append(f"| {a.label} | n/a | n/a | 0 |")
    L.append("")
    failures = [(w, a) for w in workloads for a in allocs if not cells[(w.name, a.key)].ok]
    if failures:
        L.append("**Failures:** " + "; ".join(
            f"{w.name} under {a.label} ({cells[(w.name, a.key)].failure_text()})" for w, a in failures) + "\n")
    if chart:
        L.append(f"![time and peak RSS normalised to glibc]({chart})\n")

    L.append("## Workloads\n")
    L.append(f"In each table the ratio columns are the allocator's value divided by {ref.label}'s "
             f"(above 1: slower / bigger than {ref.label}).\n")
    for w in workloads:
        args = " ".join(w.quick_args if quick else w.args)
        L.append(f"### {w.name}\n")
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
              "apex-nochecks": "#fdd0a2", "apex-hardened": "#67000d"}
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
                                       "allocators: apex, glibc, jemalloc, mimalloc, tcmalloc")
    p.add_argument("--build-dir", default=os.path.join(REPO_DIR, "build"),
                   help="CMake build directory holding bench/bench_* (default: %(default)s)")
    p.add_argument("--apex", help="path of libapexalloc.so (default: <build-dir>/core/libapexalloc.so)")
    p.add_argument("--lib", action="append", default=[], metavar="NAME=PATH",
                   help="use another library for allocator NAME (repeatable)")
    p.add_argument("--only", help="comma-separated workloads to run (default: all)")
    p.add_argument("--allocators", default="apex,glibc,jemalloc,mimalloc,tcmalloc",
                   help="comma-separated allocators (default: %(default)s)")
    p.add_argument("--runs", type=int, help="runs per (workload, allocator) (default 5; 1 with --quick)")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: far fewer iterations, 1 run, output to bench/results/quick "
                        "unless --out-dir is given")
    p.add_argument("--out-dir", help="where BENCHMARKS.md and bench.png go (default: docs/)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds before a run is killed (default 120)")
    p.add_argument("--no-chart", action="store_true", help="do not draw bench.png")
    return p.parse_args(argv)


def display_command(argv: list[str]) -> str:
    script = os.path.relpath(os.path.abspath(__file__), REPO_DIR)
    return "python3 " + shlex.join([script] + argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    have_mpl = False if args.no_chart else _find_matplotlib()
    runs = args.runs if args.runs is not None else (1 if args.quick else 5)
    if runs < 1:
        sys.exit("run.py: --runs must be at least 1")
    if args.out_dir:
        out_dir = os.path.abspath(args.out_dir)
    elif args.quick:
        out_dir = os.path.join(REPO_DIR, "bench", "results", "quick")
    else:
        out_dir = os.path.join(REPO_DIR, "docs")
    build_dir = os.path.abspath(args.build_dir)

    workloads = WORKLOADS
    if args.only:
        wanted = [s.strip() for s in args.only.split(",") if s.strip()]
        unknown = [s for s in wanted if s not in WORKLOAD_NAMES]
        if unknown:
            sys.exit(f"run.py: unknown workload(s) {', '.join(unknown)}; known: {', '.join(WORKLOAD_NAMES)}")
        workloads = [w for w in WORKLOADS if w.name in wanted]

    table = default_allocators(build_dir, args.apex)
    for spec in args.lib:
        name, _, path = spec.partition("=")
        if name not in table or not path:
            sys.exit(f"run.py: bad --lib {spec!r}; expected NAME=PATH with NAME in {', '.join(table)}")
        table[name].lib = path
    chosen = [s.strip() for s in args.allocators.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in table]
    if unknown:
        sys.exit(f"run.py: unknown allocator(s) {', '.join(unknown)}; known: {', '.join(table)}")
    if not chosen:
        sys.exit("run.py: no allocators chosen")

    launcher = os.path.join(build_dir, "bench", "bench_launch")
    missing_bins = sorted({os.path.join(build_dir, "bench", b) for b in
                           [w.binary for w in workloads] + ["bench_launch", "bench_malloc_loop"]
                           if not os.access(os.path.join(build_dir, "bench", b), os.X_OK)})
    if missing_bins:
        sys.exit("run.py: workload binaries not found:\n  " + "\n  ".join(missing_bins) +
                 f"\nbuild them first:  cmake -S {REPO_DIR} -B {build_dir} -G Ninja && "
                 f"cmake --build {build_dir} --target bench_all   (or pass --build-dir)")

    # Check every allocator library: present, and loadable by the dynamic linker.
    probe = [os.path.join(build_dir, "bench", "bench_malloc_loop"), "1", "40960"]
    allocs: list[Allocator] = []
    skipped: list[Allocator] = []
    for key in chosen:
        a = table[key]
        if a.lib is not None and not os.path.isfile(a.lib):
            a.skipped = f"library not found at `{a.lib}`"
        elif a.lib is not None:
            r = run_once(launcher, probe, a.lib, 30.0, a.env)
            if r.status == "preload failed":
                a.skipped = f"`{a.lib}` cannot be preloaded: {r.stderr.splitlines()[0] if r.stderr else ''}"
        if a.skipped:
            bar = "!" * 78
            print(f"{bar}\n!! SKIPPING {a.label}: {a.skipped}\n{bar}", file=sys.stderr)
            skipped.append(a)
            continue
        a.version = apex_version(a.lib) if key.startswith("apex") else (package_version(a.lib) if a.lib else
                                                                  os.confstr("CS_GNU_LIBC_VERSION"))
        allocs.append(a)
    if not allocs:
        sys.exit("run.py: none of the chosen allocators can be used")
    ref = next((a for a in allocs if a.key == "apex"), None) or \
        next((a for a in allocs if a.key == "glibc"), allocs[0])

    load_start = os.getloadavg()[0]
    if load_start > BUSY_LOAD:
        print(f"run.py: WARNING: load average is {load_start:.2f} before the suite starts; other work on "
              "the machine will make the numbers noisy", file=sys.stderr)
    cells = {(w.name, a.key): Cell() for w in workloads for a in allocs}
    total = runs * len(workloads) * len(allocs)
    done = 0
    t_start = time.perf_counter()
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
                print(f"[{done:3d}/{total}] round {rnd + 1}/{runs}  {w.name:<14} {a.label:<9} {note}",
                      file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - t_start
    load_end = os.getloadavg()[0]

    os.makedirs(out_dir, exist_ok=True)
    chart = None
    if have_mpl:
        write_chart(os.path.join(out_dir, "bench.png"), workloads, allocs, cells, args.quick)
        chart = "bench.png"
    elif not args.no_chart:
        bar = "!" * 78
        print(f"{bar}\n!! matplotlib is not importable from {sys.executable} (nor from {SYSTEM_PYTHON}):\n"
              f"!! bench.png NOT written. Install it with `apt-get install python3-matplotlib` (used via\n"
              f"!! {SYSTEM_PYTHON}) or `python3 -m pip install matplotlib`, then re-run.\n{bar}",
              file=sys.stderr)
    md = os.path.join(out_dir, "BENCHMARKS.md")
    write_markdown(md, command=display_command(argv), machine=machine_info(), build=build_info(build_dir),
                   load=(load_start, load_end), allocs=allocs, skipped=skipped, workloads=workloads, cells=cells, ref=ref, runs=runs,
                   quick=args.quick, chart=chart, elapsed=elapsed)

    raw_dir = os.path.join(REPO_DIR, "bench", "results")
    os.makedirs(raw_dir, exist_ok=True)
    with open(os.path.join(raw_dir, "last-run.json"), "w") as f:
        json.dump({"command": display_command(argv), "machine": dict(machine_info()),
                   "allocators": {a.key: a.lib for a in allocs},
                   "skipped": {a.key: a.skipped for a in skipped},
                   "runs": {f"{w}/{a}": [vars(r) for r in c.runs] for (w, a), c in cells.items()}},
                  f, indent=1)

    failures = [(w, a) for (w, a), c in cells.items() if not c.ok]
    print(f"\nwrote {md}" + (f" and {os.path.join(out_dir, chart)}" if chart else "") +
          f" ({elapsed:.0f} s)", file=sys.stderr)
    for w, a in failures:
        c = cells[(w, a)]
        bad = c.failed[0]
        print(f"FAILURE: {w} under {table[a].label}: {c.failure_text()}\n  stderr: {bad.stderr[-500:]}",
              file=sys.stderr)
    if skipped:
        print("SKIPPED: " + ", ".join(f"{a.label} ({a.skipped})" for a in skipped), file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
