"""A chunk of CPython's own test suite (python -m test) with apexalloc.install() active in every
process it starts: a sitecustomize on PYTHONPATH installs ApexAlloc at start-up, so the main
process and each regrtest worker run on it, and each reports its domain counters at exit."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

# test_unicode became test_str in 3.13: each entry is the first of its names this Python has.
CANDIDATES = [("test_dict",), ("test_list",), ("test_set",), ("test_tuple",),
              ("test_unicode", "test_str"), ("test_bytes",), ("test_struct",), ("test_json",),
              ("test_re",), ("test_pickle",), ("test_gc",), ("test_threading",)]

SITECUSTOMIZE = """
import atexit, json, os
try:
    import apexalloc
except ImportError:
    # An isolated subinterpreter (3.12+) cannot load a single-phase extension module; the hooks
    # are process-wide, so install() of the main interpreter serves it already.
    apexalloc = None
if apexalloc is not None and not apexalloc.installed():   # a shared subinterpreter: installed
    apexalloc.install()
    def _report():
        with open(os.environ["APEXALLOC_MARK"], "a") as f:
            f.write(json.dumps({"pid": os.getpid(), "installed": apexalloc.installed(),
                                "stats": apexalloc.domain_stats()}) + "\\n")
    atexit.register(_report)
"""


def modules() -> list:
    out = []
    for names in CANDIDATES:
        found = [n for n in names if importlib.util.find_spec(f"test.{n}") is not None]
        assert found, f"none of {names} in this Python's test package"
        out.append(found[0])
    return out


def test_the_test_package_is_there():
    proc = subprocess.run([sys.executable, "-c", "import test.libregrtest, test.test_dict"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, (
        "this Python has no `test` package (CPython's test suite); on Debian's python3 it is "
        "libpython3.X-testsuite, which scripts/setup.sh installs\n" + proc.stderr)


def test_cpython_suite_runs_with_install_active(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(SITECUSTOMIZE)
    mark = tmp_path / "mark.jsonl"
    env = dict(os.environ, PYTHONPATH=str(tmp_path), APEXALLOC_MARK=str(mark))
    env.pop("PYTHONMALLOC", None)
    names = modules()
    proc = subprocess.run([sys.executable, "-m", "test", "-j2", "--timeout", "600"] + names,
                          capture_output=True, text=True, env=env, timeout=900, cwd=tmp_path)
    tail = "\n".join(proc.stdout.splitlines()[-25:])
    assert proc.returncode == 0, f"python -m test failed:\n{tail}\n{proc.stderr[-3000:]}"
    # "Result: SUCCESS", or "Tests result: SUCCESS" from older regrtests.
    assert "result: success" in proc.stdout.lower(), tail
    assert "Error in sitecustomize" not in proc.stderr + proc.stdout
    reports = [json.loads(line) for line in mark.read_text().splitlines()]
    # The main process and one worker per test module at least.
    assert len(reports) >= len(names) + 1
    for r in reports:
        assert r["installed"] == ["raw", "mem", "obj"], r
    busiest = max(r["stats"]["obj"]["mallocs"] for r in reports)
    assert busiest > 100_000
    assert sum(r["stats"]["obj"]["foreign_frees"] for r in reports) > 0
