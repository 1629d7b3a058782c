#!/usr/bin/env python3
"""Runs the criterion benchmarks of every allocator ROUNDS times and prints a Markdown table:
median time per workload (the median of the rounds' criterion medians), peak RSS (a separate
`--profile-time` run of each workload under /usr/bin/time), and ratios to ApexAlloc, with the
geometric means. Usage (from bindings/rust): python3 apexalloc-bench/report.py [ROUNDS]"""
import json
import math
import os
import statistics
import subprocess
import sys

ALLOCATORS = ["apexalloc", "mimalloc", "jemalloc", "system"]
WORKLOADS = ["vec_growth", "btreemap_churn", "hashmap_churn", "string_building", "box_handoff"]
ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
HERE = os.path.dirname(os.path.abspath(__file__))
WORKSPACE = os.path.dirname(HERE)
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(WORKSPACE, "target"))


def executables():
    out = subprocess.run(["cargo", "bench", "-p", "apexalloc-bench", "--no-run", "--message-format=json"],
                         cwd=WORKSPACE, check=True, capture_output=True, text=True).stdout
    exes = {}
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg.get("executable") and "bench" in msg["target"]["kind"]:
            exes[msg["target"]["name"]] = msg["executable"]
    return exes


def median_ns(workload, allocator):
    path = os.path.join(TARGET, "criterion", workload, allocator, "new", "estimates.json")
    with open(path) as f:
        return json.load(f)["median"]["point_estimate"]


def peak_rss_kib(exe, workload):
    r = subprocess.run(["/usr/bin/time", "-f", "%M", exe, "--bench", "--profile-time", "1", f"^{workload}/"],
                       capture_output=True, text=True, check=True)
    return int(r.stderr.strip().splitlines()[-1])


def fmt_time(ns):
    return f"{ns / 1e6:.2f} ms" if ns >= 1e6 else f"{ns / 1e3:.1f} µs"


def main():
    exes = executables()
    times = {(w, a): [] for w in WORKLOADS for a in ALLOCATORS}
    for r in range(ROUNDS):
        for a in ALLOCATORS:
            print(f"round {r + 1}/{ROUNDS}: {a}", file=sys.stderr)
            subprocess.run([exes[a], "--bench"], check=True, stdout=subprocess.DEVNULL)
            for w in WORKLOADS:
                times[(w, a)].append(median_ns(w, a))
    rss = {(w, a): peak_rss_kib(exes[a], w) for w in WORKLOADS for a in ALLOCATORS}
    med = {k: statistics.median(v) for k, v in times.items()}

    head = "| workload | " + " | ".join(ALLOCATORS) + " | " + " | ".join(f"{a} / apexalloc" for a in ALLOCATORS[1:]) + " |"
    print(head)
    print("|" + " --- |" * (1 + 2 * len(ALLOCATORS) - 1))
    for w in WORKLOADS:
        cells = [f"{fmt_time(med[(w, a)])}, {rss[(w, a)] / 1024:.1f} MiB" for a in ALLOCATORS]
        ratios = [f"{med[(w, a)] / med[(w, 'apexalloc')]:.2f}" for a in ALLOCATORS[1:]]
        print(f"| {w} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    geo = [math.exp(statistics.mean(math.log(med[(w, a)] / med[(w, "apexalloc")]) for w in WORKLOADS))
           for a in ALLOCATORS[1:]]
    print("| **geometric mean of the time ratios** | " + " | ".join("" for _ in ALLOCATORS) + " | "
          + " | ".join(f"**{g:.2f}**" for g in geo) + " |")
    print(f"\n{ROUNDS} rounds; a ratio above 1 means that allocator took longer than ApexAlloc.", file=sys.stderr)


if __name__ == "__main__":
    main()
