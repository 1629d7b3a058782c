#!/usr/bin/env python3
"""RSS over time under each allocator: docs/rss-over-time.png.

Runs build/bench/bench_rss_over_time (burst, free, idle, burst, free, idle; see its header) once per
allocator, chosen with LD_PRELOAD (glibc: no preload), and samples the child's resident set from
/proc/<pid>/statm every 50 ms. Draws one line per allocator, marks the phases, and prints for each
allocator its peak and what it still held at the end of each idle phase.

    python3 bench/rss_over_time.py [--build-dir build] [--mib 256] [--idle-ms 3000] [--out docs/rss-over-time.png]

ApexAlloc runs with its defaults (opt.decay_ms = 1000: cached memory goes back after about a second
of idleness, without any allocator call).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

LIBDIR = "/usr/lib/x86_64-linux-gnu"
PAGE = os.sysconf("SC_PAGE_SIZE")


def allocators(build_dir: str) -> list[tuple[str, str | None, str]]:
    return [
        ("ApexAlloc", os.path.join(build_dir, "core", "libapexalloc.so"), "#d62728"),
        ("glibc", None, "#7f7f7f"),
        ("jemalloc", os.path.join(LIBDIR, "libjemalloc.so.2"), "#1f77b4"),
        ("mimalloc", os.path.join(LIBDIR, "libmimalloc.so.2"), "#2ca02c"),
        ("tcmalloc", os.path.join(LIBDIR, "libtcmalloc_minimal.so.4"), "#ff7f0e"),
    ]


def rss_mib(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE / (1 << 20)
    except (OSError, IndexError, ValueError):
        return None


def run(prog: str, args: list[str], preload: str | None, interval: float):
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    for k in list(env):
        if k.startswith("APEX_"):
            del env[k]
    if preload:
        env["LD_PRELOAD"] = preload
    t0 = time.monotonic()
    child = subprocess.Popen([prog, *args], env=env, stdout=subprocess.PIPE, text=True)
    os.set_blocking(child.stdout.fileno(), False)
    samples, phases, buf = [], [], ""
    while True:
        now = time.monotonic() - t0
        r = rss_mib(child.pid)
        done = child.poll() is not None
        if r is not None and not done:
            samples.append((now, r))
        try:
            chunk = child.stdout.read()
        except (BlockingIOError, TypeError):
            chunk = None
        if chunk:
            buf += chunk
            while "\n" in buf:
                line, buf = buf.split("\n", 1)
                ms, name = line.split(" ", 1)
                phases.append((int(ms) / 1000.0, name))
        if done:
            break
        time.sleep(interval)
    if child.returncode != 0:
        raise SystemExit(f"{prog} under {preload or 'glibc'} exited with {child.returncode}")
    return samples, phases


def at(samples, t):
    """RSS of the last sample taken before time t."""
    best = None
    for s_t, r in samples:
        if s_t <= t:
            best = r
    return best if best is not None else 0.0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--build-dir", default="build")
    p.add_argument("--mib", type=int, default=256)
    p.add_argument("--idle-ms", type=int, default=3000)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--interval-ms", type=int, default=50)
    p.add_argument("--out", default=os.path.join("docs", "rss-over-time.png"))
    a = p.parse_args()
    prog = os.path.join(a.build_dir, "bench", "bench_rss_over_time")
    if not os.path.exists(prog):
        raise SystemExit(f"{prog} not found: cmake --build --preset default first")
    args = [str(a.mib), str(a.idle_ms), str(a.threads)]

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 5.5))
    phase_marks = None
    print(f"{'allocator':10} {'peak MiB':>9} {'end idle1':>10} {'end idle2':>10} {'kept of burst':>14}")
    for name, lib, color in allocators(a.build_dir):
        if lib and not os.path.exists(lib):
            print(f"{name}: {lib} missing, skipped", file=sys.stderr)
            continue
        samples, phases = run(prog, args, lib, a.interval_ms / 1000.0)
        end_t = next((t for t, n in phases if n == "end"), None)
        if end_t is not None:
            samples = [(t, r) for t, r in samples if t <= end_t]   # not the exit itself
        xs = [t for t, _ in samples]
        ys = [r for _, r in samples]
        ax.plot(xs, ys, label=name, color=color, linewidth=2 if name == "ApexAlloc" else 1.4)
        marks = dict((n, t) for t, n in phases)
        start = at(samples, marks.get("burst1", 0) + 0.01) if samples else 0.0
        e1 = at(samples, marks.get("burst2", 0) - 0.01)
        e2 = at(samples, marks.get("end", xs[-1]) - 0.01)
        peak = max(ys) if ys else 0.0
        kept = (e2 - start) / (peak - start) * 100 if peak > start else 0.0
        print(f"{name:10} {peak:9.1f} {e1:10.1f} {e2:10.1f} {kept:13.1f}%")
        if phase_marks is None:
            phase_marks = phases
    top = ax.get_ylim()[1]
    shown = [(t, n) for t, n in (phase_marks or []) if n not in ("start", "end")]
    for i, (t, n) in enumerate(shown):
        ax.axvline(t, color="black", linewidth=0.6, linestyle=":")
        ax.text(t, top * (0.98 - 0.05 * (i % 3)), " " + n, fontsize=8, va="top")
    ax.set_xlabel("seconds (phase marks from the first run)")
    ax.set_ylabel("resident set (MiB)")
    ax.set_title(f"RSS over time: {a.threads} threads allocate {a.mib} MiB of mixed sizes, free 99.5%, idle "
                 f"{a.idle_ms / 1000:g} s, twice (sampled every {a.interval_ms} ms)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(a.out, dpi=110)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
