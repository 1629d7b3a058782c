"""run.py — the Python binding's benchmark: churn.py under each allocator configuration, several
interleaved runs, medians of wall time, CPU time and peak RSS, as a Markdown table.

    python bench/run.py [--runs 5] [--preload build/core/libapexalloc.so] [--out results.json]

Run it with the Python of a venv where apexalloc is installed. Configurations (each skipped when
its library is not on this machine, and said so):
  pymalloc            CPython's default allocator
  install()           apexalloc.install(): all three domains on the module's ApexAlloc
  malloc (glibc)      PYTHONMALLOC=malloc: the host's default malloc
  malloc + ApexAlloc  PYTHONMALLOC=malloc LD_PRELOAD=libapexalloc.so
  malloc + mimalloc   PYTHONMALLOC=malloc LD_PRELOAD=Debian's libmimalloc.so.2
  malloc + jemalloc   PYTHONMALLOC=malloc LD_PRELOAD=Debian's libjemalloc.so.2
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent.parent
MIMALLOC = "/usr/lib/x86_64-linux-gnu/libmimalloc.so.2"
JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"


def configurations(preload: Path) -> list:
    confs = [("pymalloc", {}, []), ("install()", {}, ["--install"]),
             ("malloc (glibc)", {"PYTHONMALLOC": "malloc"}, [])]
    for name, lib in (("malloc + ApexAlloc", str(preload)), ("malloc + mimalloc", MIMALLOC),
                      ("malloc + jemalloc", JEMALLOC)):
        if os.path.exists(lib):
            confs.append((name, {"PYTHONMALLOC": "malloc", "LD_PRELOAD": lib}, []))
        else:
            print(f"run.py: {lib} not found: no '{name}' row", file=sys.stderr)
    return confs


def run_once(env_extra: dict, args: list, workload: list) -> dict:
    env = dict(os.environ)
    env.pop("PYTHONMALLOC", None)
    env.pop("LD_PRELOAD", None)
    env.update(env_extra)
    out = subprocess.run([sys.executable, str(HERE / "churn.py")] + args + workload,
                         env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--preload", type=Path, default=REPO / "build" / "core" / "libapexalloc.so")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "churn.json")
    ap.add_argument("workload", nargs="*", help="arguments for churn.py (e.g. --rounds 6)")
    args = ap.parse_args()
    confs = configurations(args.preload)
    samples = {name: [] for name, _, _ in confs}
    for r in range(args.runs):                      # interleaved: drift in load hits all alike
        for name, env, extra in confs:
            samples[name].append(run_once(env, extra, args.workload))
            print(f"run {r + 1}/{args.runs} {name}: {samples[name][-1]}", file=sys.stderr)
    base = {k: statistics.median(s[k] for s in samples["pymalloc"])
            for k in ("seconds", "cpu_seconds", "peak_rss_kb")}
    rows = ["| configuration | wall s (median) | CPU s (median) | vs pymalloc (CPU) "
            "| peak RSS MiB (median) | vs pymalloc (RSS) |",
            "| --- | ---: | ---: | ---: | ---: | ---: |"]
    result = {}
    for name, _, _ in confs:
        med = {k: statistics.median(s[k] for s in samples[name])
               for k in ("seconds", "cpu_seconds", "peak_rss_kb")}
        result[name] = {"median": med, "samples": samples[name]}
        rows.append(f"| {name} | {med['seconds']:.2f} | {med['cpu_seconds']:.2f} | "
                    f"{med['cpu_seconds'] / base['cpu_seconds']:.2f}x | "
                    f"{med['peak_rss_kb'] / 1024:.1f} | "
                    f"{med['peak_rss_kb'] / base['peak_rss_kb']:.2f}x |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"python": sys.version, "runs": args.runs,
                                    "workload": args.workload, "results": result}, indent=1))
    print(f"{args.runs} runs each, medians; Python {sys.version.split()[0]}")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
