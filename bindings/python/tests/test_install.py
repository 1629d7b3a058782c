"""apexalloc.install(): CPython's own allocations on ApexAlloc, each case in a child interpreter
(install changes the whole process). Blocks from before install() go back to their allocator,
zero-byte requests get unique live pointers, the raw domain works without the GIL, uninstall()
sends new blocks back while ApexAlloc's are still freed by it."""
from __future__ import annotations

import json
import textwrap

from conftest import run_python


def test_objects_from_before_during_and_after_install_all_live_and_die():
    proc = run_python("""
        import gc, json, sys, threading
        import apexalloc

        def churn(tag, n=20000):
            d = {f"{tag}{i}": [i, str(i) * (i % 7), bytes(i % 300)] for i in range(n)}
            return d, [json.dumps({"k": list(range(i % 50))}) for i in range(n // 10)]

        before = churn("a")
        grow_before = [bytearray(b"x" * 100) for _ in range(500)]
        apexalloc.install()
        assert apexalloc.installed() == ("raw", "mem", "obj")
        during = churn("b")
        for b in grow_before:                       # resize blocks made by pymalloc/libc
            b.extend(b"y" * 5000)
        del before                                  # free them through the hooks
        gc.collect()
        t = threading.Thread(target=churn, args=("t",))
        t.start(); t.join()
        assert apexalloc.uninstall() == ("raw", "mem", "obj")
        assert apexalloc.installed() == ()
        grow_during = [bytearray(b"z" * 50) for _ in range(500)]
        after = churn("c")
        del during                                  # ApexAlloc's blocks, freed after uninstall
        for b in grow_before:
            assert b == b"x" * 100 + b"y" * 5000
        gc.collect()
        print(json.dumps(apexalloc.domain_stats()))
    """)
    stats = json.loads(proc.stdout)
    for d in ("mem", "obj"):
        assert stats[d]["mallocs"] > 0 and stats[d]["frees"] > 0
        assert stats[d]["forwarded"] > 0                 # after uninstall: previous allocator
        assert stats[d]["hooked"] == 1 and stats[d]["active"] == 0
    assert stats["obj"]["foreign_frees"] > 0             # pymalloc's blocks went back to it
    assert stats["raw"]["mallocs"] + stats["raw"]["callocs"] > 0     # a thread's state


def test_zero_bytes_and_the_pymem_rules_in_every_domain():
    run_python("""
        import apexalloc
        from apexalloc import ffi, lib
        D = {"raw": lib.APEXPY_DOMAIN_RAW, "mem": lib.APEXPY_DOMAIN_MEM,
             "obj": lib.APEXPY_DOMAIN_OBJ}
        old = {d: lib.apexpy_pymem_malloc(i, 100) for d, i in D.items()}
        for p in old.values():
            ffi.memmove(p, b"o" * 100, 100)
            assert not lib.apex_owns(p)
        apexalloc.install()
        for d, i in D.items():
            zeros = [lib.apexpy_pymem_malloc(i, 0) for _ in range(100)]
            zeros += [lib.apexpy_pymem_calloc(i, 0, 0) for _ in range(100)]
            assert all(p != ffi.NULL for p in zeros), d
            assert len({int(ffi.cast("uintptr_t", p)) for p in zeros}) == 200, d   # unique
            assert all(lib.apex_owns(p) for p in zeros), d
            p = lib.apexpy_pymem_malloc(i, 64)
            ffi.memmove(p, b"k" * 64, 64)
            q = lib.apexpy_pymem_realloc(i, p, 0)        # resizes, never frees
            assert q != ffi.NULL and lib.apex_owns(q), d
            q = lib.apexpy_pymem_realloc(i, q, 10000)
            assert lib.apex_owns(q)
            r = lib.apexpy_pymem_realloc(i, ffi.NULL, 0)
            assert r != ffi.NULL and lib.apex_owns(r)
            c = lib.apexpy_pymem_calloc(i, 1000, 8)
            assert ffi.buffer(c, 8000)[:] == bytes(8000)
            # A block from before install(): resized and freed by the allocator that made it.
            o = lib.apexpy_pymem_realloc(i, old[d], 200)
            assert o != ffi.NULL and not lib.apex_owns(o) and ffi.buffer(o, 100)[:] == b"o" * 100
            for x in zeros + [q, r, c, o]:
                lib.apexpy_pymem_free(i, x)
            lib.apexpy_pymem_free(i, ffi.NULL)
            assert not lib.apex_owns(zeros[0])
        s = apexalloc.domain_stats()
        assert s["raw"]["foreign_reallocs"] == 1 and s["raw"]["foreign_frees"] >= 1
    """)


def test_second_install_is_refused_and_install_after_uninstall_works():
    run_python("""
        import apexalloc
        apexalloc.install(("mem", "obj"))
        assert apexalloc.installed() == ("mem", "obj")
        for again in (None, ("raw",)):
            try:
                apexalloc.install() if again is None else apexalloc.install(again)
            except apexalloc.InstallError as e:
                assert "already installed" in str(e)
            else:
                raise SystemExit("a second install() was accepted")
        apexalloc.uninstall()
        x = [str(i) for i in range(10000)]
        apexalloc.install()                                 # again, with raw added
        assert apexalloc.installed() == ("raw", "mem", "obj")
        y = [str(i) for i in range(10000)]
        del x, y
        assert apexalloc.uninstall() == ("raw", "mem", "obj")
        assert apexalloc.uninstall() == ()
    """)


def test_bad_domains_and_tracemalloc_are_refused():
    run_python("""
        import tracemalloc
        import apexalloc
        for bad in (("heap",), (), "nope"):
            try:
                apexalloc.install(bad)
            except ValueError:
                pass
            else:
                raise SystemExit(f"install({bad!r}) was accepted")
        tracemalloc.start()
        try:
            apexalloc.install()
        except apexalloc.InstallError as e:
            assert "tracemalloc" in str(e)
        else:
            raise SystemExit("install() under tracemalloc was accepted")
        tracemalloc.stop()
        apexalloc.install("obj")                            # a single domain as a str
        assert apexalloc.installed() == ("obj",)
        tracemalloc.start()                                 # after install: it wraps the hooks
        x = [object() for _ in range(1000)]
        assert tracemalloc.get_traced_memory()[0] > 0
        tracemalloc.stop()                                  # puts the hooks back
        del x
        assert apexalloc.installed() == ("obj",)
    """)


def test_free_threaded_build_is_refused_or_not_free_threaded():
    # This interpreter's build decides which branch runs; both are checked against sysconfig.
    run_python("""
        import sysconfig, apexalloc
        ft = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
        assert apexalloc.free_threaded() == ft
        assert bool(apexalloc.lib.apexpy_free_threaded_build()) == ft
        if ft:
            try:
                apexalloc.install()
            except apexalloc.InstallError as e:
                assert "free-threaded" in str(e)
            else:
                raise SystemExit("install() on a free-threaded build was accepted")
        else:
            apexalloc.install()
    """)


def test_raw_domain_without_the_gil_from_many_threads():
    run_python("""
        import threading
        import apexalloc
        from apexalloc import lib
        apexalloc.install()
        errors = []
        # cffi releases the GIL around the call: four threads in PyMem_Raw* at once.
        def work(seed):
            errors.append(lib.apexpy_raw_churn(100000, seed))
        ts = [threading.Thread(target=work, args=(s,)) for s in range(4)]
        for t in ts: t.start()
        for t in ts: t.join()
        assert errors == [0, 0, 0, 0], errors
        s = apexalloc.domain_stats()["raw"]
        assert s["mallocs"] + s["reallocs"] > 4 * 50000 and s["frees"] > 4 * 10000
        apexalloc.uninstall()
        assert lib.apexpy_raw_churn(20000, 9) == 0         # mixed: ApexAlloc's and libc's blocks
    """, timeout=120)


def test_threads_and_objects_shared_between_them_under_install():
    run_python("""
        import queue, threading
        import apexalloc
        apexalloc.install()
        q = queue.Queue()
        def producer():
            for i in range(20000):
                q.put({"i": i, "s": "x" * (i % 200), "l": list(range(i % 30))})
            q.put(None)
        def consumer(out):
            n = 0
            while (item := q.get()) is not None:
                i = item["i"]
                n += item["s"] == "x" * (i % 200) and item["l"] == list(range(i % 30))
            out.append(n)
        out = []
        ts = [threading.Thread(target=producer), threading.Thread(target=consumer, args=(out,))]
        for t in ts: t.start()
        for t in ts: t.join()
        assert out == [20000]
        apexalloc.collect()
    """)


def test_module_entry_point_runs_a_script_with_arguments(tmp_path):
    script = tmp_path / "prog.py"
    script.write_text(
        "import sys, apexalloc\n"
        "print('argv', sys.argv[1:], 'installed', apexalloc.installed(), 'main', __name__)\n"
        "x = {str(i): i for i in range(10000)}\n"
        "sys.exit(int(sys.argv[1]))\n")
    svg = tmp_path / "map.svg"
    proc = run_python("", args=["-m", "apexalloc", "--stats", "--heap-map", str(svg),
                                str(script), "3", "--stats"], check=False)
    assert proc.returncode == 3, proc.stderr
    assert "argv ['3', '--stats'] installed ('raw', 'mem', 'obj') main __main__" in proc.stdout
    assert "ApexAlloc " in proc.stderr and "allocated" in proc.stderr
    assert svg.read_text().rstrip().endswith("</svg>")


def test_module_entry_point_runs_a_module(tmp_path):
    (tmp_path / "mymod.py").write_text(
        "import sys, json, apexalloc\n"
        "print(json.dumps({'argv': sys.argv[1:], 'installed': apexalloc.installed(),"
        " 'name': __name__}))\n")
    proc = run_python("", args=["-m", "apexalloc", "--stats-format", "json", "--stats",
                                "-m", "mymod", "a", "b"], cwd=str(tmp_path))
    out = json.loads(proc.stdout)
    assert out == {"argv": ["a", "b"], "installed": ["raw", "mem", "obj"], "name": "__main__"}
    json.loads(proc.stderr)                            # the statistics, one JSON object


def test_module_entry_point_usage_errors():
    proc = run_python("", args=["-m", "apexalloc"], check=False)
    assert proc.returncode == 2 and "usage" in proc.stderr
    proc = run_python("", args=["-m", "apexalloc", "--bogus", "x.py"], check=False)
    assert proc.returncode == 2 and "--bogus" in proc.stderr
    proc = run_python("", args=["-m", "apexalloc", "--help"], check=False)
    assert proc.returncode == 0 and "--stats" in proc.stdout



def test_install_over_debug_hooks_and_libc():
    # The previous allocator may be the debug hooks (PYTHONMALLOC=debug, -X dev) or libc
    # (PYTHONMALLOC=malloc): its blocks still go back to it.
    code = """
        import gc, apexalloc
        a = [{"x": str(i)} for i in range(50000)]
        apexalloc.install()
        b = [{"y": str(i)} for i in range(50000)]
        del a
        gc.collect()
        apexalloc.uninstall()
        del b
        gc.collect()
        s = apexalloc.domain_stats()["obj"]
        assert s["foreign_frees"] >= 100000 and s["frees"] >= 100000, s
    """
    for mode in ("debug", "malloc_debug", "malloc"):
        run_python(code, env={"PYTHONMALLOC": mode})
    run_python(code, args=["-X", "dev", "-c", textwrap.dedent(code)])
