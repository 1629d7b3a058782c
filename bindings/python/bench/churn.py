"""churn.py — an object-churn workload for CPython's allocators: dicts, lists, str, bytes and a
JSON round trip, with a working set that changes shape from round to round. Prints one JSON line:
the workload's wall and CPU time and the process's peak RSS.

    python churn.py [--install] [--rounds N]

--install runs it with apexalloc.install() active. apexalloc is imported in every configuration,
so that each pays the same fixed cost for the module and only the allocator differs.
"""
from __future__ import annotations

import argparse
import json
import random
import resource
import time

import apexalloc


def one_round(rng: random.Random, n: int, survivors: list) -> list:
    records = [{"id": i, "name": f"user{i}-{rng.random():.6f}",
                "tags": [f"t{j}" for j in range(i % 8)],
                "blob": bytes(rng.randrange(600)), "score": i * 0.5,
                "pair": (i, str(i))} for i in range(n)]
    text = json.dumps(records[: n // 4], default=lambda b: b.hex())
    back = json.loads(text)
    words = " ".join(r["name"] for r in records).split("-")
    index = {w: len(w) for w in words}
    chunks = [bytearray(rng.randrange(64, 4096)) for _ in range(n // 10)]
    for c in chunks[::2]:
        c.extend(b"x" * 100)
    survivors.extend(records[:: rng.randrange(3, 7)])      # part of each round lives on
    survivors.extend(back[:: 5])
    if len(survivors) > 4 * n:                            # the old part of the working set dies
        del survivors[: len(survivors) // 2]
    return [len(index), len(chunks)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--install", action="store_true")
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--n", type=int, default=10000)
    args = ap.parse_args()
    if args.install:
        apexalloc.install()
    rng = random.Random(42)
    survivors: list = []
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(args.rounds):
        one_round(rng, args.n, survivors)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "peak_rss_kb": peak_kb,
                      "installed": apexalloc.installed()}))


if __name__ == "__main__":
    main()
