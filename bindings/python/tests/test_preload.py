"""Two copies of ApexAlloc in one process: the module's own (hidden symbols, dlopen-safe TLS) and
a preloaded libapexalloc.so serving malloc. Neither binds to the other; each one's statistics
move with its own allocations. And the whole-interpreter route: PYTHONMALLOC=malloc with the
library preloaded."""
from __future__ import annotations

import json

from conftest import find_preload_lib, run_python

# Reads a statistic of the preloaded library through the process's global symbol scope.
PRELOADED = """
import ctypes
_g = ctypes.CDLL(None)
def preloaded(key, ctype=ctypes.c_size_t):
    v = ctype(); n = ctypes.c_size_t(ctypes.sizeof(v))
    assert _g.apex_ctl(key.encode(), ctypes.byref(v), ctypes.byref(n), None, 0) == 0, key
    return v.value
"""


def test_module_exports_no_apex_symbol():
    run_python("""
        import ctypes, apexalloc._ffi as m
        so = ctypes.CDLL(m.__file__)
        for name in ("apex_malloc", "apex_free", "apex_ctl", "apex_heap_new", "apexpy_install"):
            try:
                getattr(so, name)
            except AttributeError:
                pass
            else:
                raise SystemExit(f"{name} is exported by the module")
        getattr(so, "PyInit__ffi")
    """)


def test_module_and_preloaded_library_coexist():
    lib = find_preload_lib()
    proc = run_python(PRELOADED + """
import json, apexalloc
out = {"tls_module": apexalloc.ctl("opt.tls_model"),
       "tls_preloaded": preloaded("opt.tls_model", ctypes.c_char_p).decode()}
# malloc (pymalloc's big-object path goes to libc malloc) is served by the preloaded copy.
p0, m0 = preloaded("stats.allocated"), apexalloc.stats()["allocated"]
big = [bytes(1_000_000) for _ in range(20)]
p1, m1 = preloaded("stats.allocated"), apexalloc.stats()["allocated"]
# The module's heap is served by the module's copy.
with apexalloc.Heap() as h:
    views = [h.alloc(1_000_000) for _ in range(20)]
    p2, m2 = preloaded("stats.allocated"), apexalloc.stats()["allocated"]
    out["heap"] = h.stats()["allocated"]
    del views
out.update(p_by_bytes=p1 - p0, m_by_bytes=m1 - m0, p_by_heap=p2 - p1, m_by_heap=m2 - m1)
# install() with the preloaded copy as the previous allocator of the raw domain.
apexalloc.install()
junk = [{"k": str(i)} for i in range(50000)]
del big, junk
apexalloc.uninstall()
out["objs"] = apexalloc.domain_stats()["obj"]["mallocs"]
print(json.dumps(out))
""", env={"LD_PRELOAD": str(lib)})
    out = json.loads(proc.stdout)
    assert out["tls_module"] == "global-dynamic" and out["tls_preloaded"] == "initial-exec"
    assert out["p_by_bytes"] >= 20_000_000 and abs(out["m_by_bytes"]) < 1_000_000
    assert out["m_by_heap"] >= 20_000_000 and abs(out["p_by_heap"]) < 1_000_000
    assert out["heap"] >= 20_000_000 and out["objs"] > 50000


def test_whole_interpreter_on_the_preloaded_library():
    lib = find_preload_lib()
    proc = run_python(PRELOADED + """
import json, sys
before = preloaded("stats.allocated")
objs = [str(i) for i in range(200000)]            # small objects: pymalloc would keep these
after = preloaded("stats.allocated")
print(json.dumps({"grew": after - before, "blocks": sys.getallocatedblocks()}))
""", env={"LD_PRELOAD": str(lib), "PYTHONMALLOC": "malloc", "APEX_SHOW_STATS": "1"})
    out = json.loads(proc.stdout)
    assert out["grew"] >= 200000 * 48            # every str object came from libapexalloc.so
    assert out["blocks"] == 0                    # pymalloc is not in use
    assert "ApexAlloc " in proc.stderr           # APEX_SHOW_STATS printed at exit


def test_whole_interpreter_route_runs_the_package_and_install():
    lib = find_preload_lib()
    run_python("""
        import apexalloc, json, threading
        apexalloc.install()
        def work():
            return [json.loads(json.dumps({"a": list(range(100))})) for _ in range(2000)]
        ts = [threading.Thread(target=work) for _ in range(3)]
        for t in ts: t.start()
        for t in ts: t.join()
        apexalloc.uninstall()
        s = apexalloc.domain_stats()
        assert s["mem"]["foreign_frees"] + s["obj"]["foreign_frees"] + s["raw"]["foreign_frees"] > 0
    """, env={"LD_PRELOAD": str(lib), "PYTHONMALLOC": "malloc"})
