#!/usr/bin/env python3
"""Instructions spent inside the allocator, counted with callgrind (used by run.py --mode instructions).

Callgrind counts every instruction the program executes and charges each call arc (caller ->
callee) with the *inclusive* cost of the calls made along it: every instruction from the call to
the matching return, including whatever the callee calls in turn (memset in calloc, the mmap
wrapper, an allocator's slow path). Summing the arcs from the workload's own code (its object
file) to the allocation entry points (malloc, free, calloc, realloc, aligned_alloc, ...) gives
exactly the instructions the allocator executed for the workload, and none of the workload's own
work (its loop, random numbers, the checks of the data). Calls that the C library makes to
malloc on its own behalf (stdio buffers) are left out, as they do not come from the workload.

For the random-replace loop the difference between a run of 2N steps and a run of N steps is
taken, so start-up (the allocator's initialisation, the 4,096 allocations that fill the table,
the frees at exit) cancels, and what is left is N steady-state malloc+free pairs.

Runs use LD_BIND_NOW=1 so that the first call of each entry point does not go through the
dynamic linker's lazy-binding resolver (which would charge that call to the resolver).

Command line (what bench/count_fastpath.sh runs):
    python3 bench/callgrind.py [--build-dir build] [--steps N] [LIB.so | glibc ...]
prints, for each library (default: the build's ApexAlloc), the instructions per malloc+free pair
of bench_random_replace inside the allocator, split into malloc and free, and with the loop.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

ENTRY_POINTS = ("malloc", "free", "calloc", "realloc", "aligned_alloc", "posix_memalign", "memalign",
                "valloc", "pvalloc", "reallocarray", "malloc_usable_size")


@dataclass
class Count:
    """One callgrind run of one workload."""
    ok: bool
    status: str                      # "ok" or why not
    total: int = 0                   # instructions of the whole process
    calls: dict[str, int] = field(default_factory=dict)   # entry point -> calls from the workload
    instr: dict[str, int] = field(default_factory=dict)   # entry point -> inclusive instructions
    stderr: str = ""

    @property
    def alloc_instr(self) -> int:
        return sum(self.instr.values())

    @property
    def alloc_calls(self) -> int:
        return sum(self.calls.values())


def parse(path: str, program: str) -> tuple[int, dict[str, int], dict[str, int]]:
    """(total instructions, calls per entry point, inclusive instructions per entry point) of a
    callgrind output file written with --compress-strings=no --compress-pos=no, counting only the
    calls made from functions of the object file named like `program`."""
    base = os.path.basename(program)
    calls: dict[str, int] = {}
    instr: dict[str, int] = {}
    total = 0
    ob = ""
    cfn = ""
    pending = None  # call count of a calls= line whose cost line comes next
    with open(path, errors="replace") as f:
        for line in f:
            if pending is not None:
                fields = line.split()
                if os.path.basename(ob) == base and cfn in ENTRY_POINTS:
                    calls[cfn] = calls.get(cfn, 0) + pending
                    instr[cfn] = instr.get(cfn, 0) + int(fields[1])
                pending = None
            elif line.startswith("ob="):
                ob = line[3:].strip()
            elif line.startswith("cfn="):
                cfn = line[4:].strip()
            elif line.startswith("calls="):
                pending = int(line[6:].split()[0])
            elif line.startswith("summary:") or line.startswith("totals:"):
                total = max(total, int(line.split()[1]))
    return total, calls, instr


def count(argv: list[str], preload: str | None, env: dict | None = None, timeout: float = 600.0) -> Count:
    """Run argv once under callgrind with the given library preloaded (None: the C library's)."""
    e = dict(os.environ)
    e.pop("LD_PRELOAD", None)
    e.update(env or {})
    e["LD_BIND_NOW"] = "1"
    if preload:
        e["LD_PRELOAD"] = preload
    with tempfile.TemporaryDirectory(prefix="apex-callgrind-") as tmp:
        out = os.path.join(tmp, "callgrind.out")
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--compress-strings=no",
               "--compress-pos=no"] + argv
        try:
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=e,
                                  timeout=timeout)
        except FileNotFoundError:
            return Count(False, "valgrind not found")
        except subprocess.TimeoutExpired:
            return Count(False, f"timeout ({timeout:.0f} s)")
        if proc.returncode != 0 or not os.path.exists(out):
            return Count(False, f"exit {proc.returncode}", stderr=proc.stderr)
        total, calls, instr = parse(out, argv[0])
    if not calls:
        return Count(False, "no allocator calls found in the callgrind output", total, stderr=proc.stderr)
    return Count(True, "ok", total, calls, instr, proc.stderr)


@dataclass
class PairCost:
    """Steady-state instructions per malloc+free pair of the random-replace loop."""
    pair: float       # inside the allocator (malloc + free)
    malloc: float
    free: float
    with_loop: float  # the whole process, i.e. including the loop's own work


def pair_cost(small: Count, large: Count, steps: int) -> PairCost:
    """From runs of `steps` and `2 * steps` steps."""
    def d(entry: str) -> float:
        return (large.instr.get(entry, 0) - small.instr.get(entry, 0)) / steps
    return PairCost((large.alloc_instr - small.alloc_instr) / steps, d("malloc"), d("free"),
                    (large.total - small.total) / steps)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--build-dir", default="build")
    p.add_argument("--steps", type=int, default=200000, help="N (runs of N and 2N steps; default %(default)s)")
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                   help="extra environment for the workload, e.g. APEX_SECURE=2")
    p.add_argument("libs", nargs="*", help="allocator libraries to preload; 'glibc' for none")
    a = p.parse_args(argv)
    libs = a.libs or [os.path.join(a.build_dir, "core", "libapexalloc.so")]
    binary = os.path.join(a.build_dir, "bench", "bench_random_replace")
    env = dict(kv.split("=", 1) for kv in a.env)
    status = 0
    for lib in libs:
        pre = None if lib == "glibc" else lib
        small = count([binary, str(a.steps)], pre, env)
        large = count([binary, str(2 * a.steps)], pre, env)
        name = os.path.basename(lib)
        if not (small.ok and large.ok):
            bad = small if not small.ok else large
            print(f"{name}: FAILED ({bad.status}) {bad.stderr.strip().splitlines()[-1:] or ''}")
            status = 1
            continue
        c = pair_cost(small, large, a.steps)
        print(f"{name}: {c.pair:.1f} instructions per malloc+free pair in the allocator "
              f"(malloc {c.malloc:.1f}, free {c.free:.1f}); {c.with_loop:.1f} with the loop")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
