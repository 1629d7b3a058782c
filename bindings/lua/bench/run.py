#!/usr/bin/env python3
"""Lua allocation benchmark: the same scripts on the stock lua5.4 (glibc realloc), on apexlua (a
state on its own ApexAlloc heap, with and without per-type records), and on lua5.4 under
LD_PRELOAD of mimalloc and of libapexalloc.so. Prints a Markdown table of medians (wall time,
peak RSS) over --runs runs, interleaving the configurations so that background load hits all
alike, and checks that every configuration prints the same answer. The speed column compares CPU
time (user + system), which a machine shared with other work disturbs less than wall time.

    python3 bindings/lua/bench/run.py --build build [--runs 5] [--quick]
"""
import argparse, os, statistics, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
MIMALLOC = "/usr/lib/x86_64-linux-gnu/libmimalloc.so.2"

WORKLOADS = [  # (name, script, argument, quick argument)
    ("binary trees", "binary_trees.lua", "14", "10"),
    ("string building", "string_build.lua", "300000", "20000"),
    ("table churn", "table_churn.lua", "120", "5"),
]


def configs(build):
    apexlua = os.path.join(build, "bindings", "lua", "apexlua")
    libapex = os.path.join(build, "core", "libapexalloc.so")
    return [
        ("lua5.4 (glibc)", ["lua5.4"], {}),
        ("lua5.4 + mimalloc", ["lua5.4"], {"LD_PRELOAD": MIMALLOC}),
        ("lua5.4 + libapexalloc", ["lua5.4"], {"LD_PRELOAD": os.path.abspath(libapex)}),
        ("apexlua", [apexlua], {}),
        ("apexlua --no-types", [apexlua, "--no-types"], {}),
    ]


def run_once(cmd, extra_env):
    # Peak RSS through GNU time: a child forked from this Python would inherit Python's own peak
    # in ru_maxrss. LD_PRELOAD applies to the measured program only (time runs it with env).
    env = dict(os.environ)
    rss_file = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"apexlua-bench-{os.getpid()}.rss")
    pre = ["/usr/bin/time", "-f", "%U %S %M", "-o", rss_file]
    if extra_env:
        pre += ["env"] + [f"{k}={v}" for k, v in extra_env.items()]
    start = time.perf_counter()
    proc = subprocess.run(pre + cmd, stdout=subprocess.PIPE, env=env)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}")
    with open(rss_file) as f:
        user, system, max_kb = f.read().split()[-3:]
    os.remove(rss_file)
    return elapsed, float(user) + float(system), int(max_kb), proc.stdout.strip()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="tiny sizes: checks the runner works")
    a = ap.parse_args()
    cfgs = configs(a.build)
    rows = []
    for name, script, arg, quick in WORKLOADS:
        path = os.path.join(HERE, script)
        times = {c[0]: [] for c in cfgs}
        cpu = {c[0]: [] for c in cfgs}
        rss = {c[0]: [] for c in cfgs}
        answers = set()
        for _ in range(a.runs):
            for cname, cmd, env in cfgs:
                t, c, m, out = run_once(cmd + [path, quick if a.quick else arg], env)
                times[cname].append(t)
                cpu[cname].append(c)
                rss[cname].append(m)
                answers.add(out)
        if len(answers) != 1:
            sys.exit(f"{name}: configurations disagree: {answers}")
        base = statistics.median(cpu[cfgs[0][0]])
        for cname, _, _ in cfgs:
            mt, mc, mr = (statistics.median(v[cname]) for v in (times, cpu, rss))
            rows.append((name, cname, mt, mc, base / mc, mr / 1024))
        print(f"# {name}: done", file=sys.stderr)
    print("| workload | configuration | CPU time (s) | speed vs glibc (CPU) | wall time (s) | peak RSS (MiB) |")
    print("|---|---|---:|---:|---:|---:|")
    for name, cname, t, c, ratio, mib in rows:
        print(f"| {name} | {cname} | {c:.2f} | {ratio:.2f}x | {t:.2f} | {mib:.1f} |")


if __name__ == "__main__":
    main()
