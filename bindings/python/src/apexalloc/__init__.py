"""ApexAlloc for Python.

    import apexalloc
    apexalloc.install()                      # CPython's own memory on ApexAlloc
    print(apexalloc.stats()["allocated"])    # statistics as Python data
    with apexalloc.Heap(limit=1 << 20) as h: # a heap of its own; allocations are memoryviews
        buf = h.alloc(64)

The extension module compiles ApexAlloc's own copy of the core (hidden symbols, dlopen-safe TLS),
so it works beside a preloaded libapexalloc.so without either seeing the other.
"""
from __future__ import annotations

from ._core import ffi, lib
from ._ctl import Key, ctl, key, keys, run
from ._heap import Heap, collect, owns, usable_size
from ._install import (DOMAINS, InstallError, domain_stats, free_threaded, install, installed,
                       uninstall)
from ._stats import bin_stats, heap_map, print_stats, stats, thread_stats

__version__ = ffi.string(lib.apex_version_string()).decode()

__all__ = [
    "stats", "thread_stats", "bin_stats", "print_stats", "heap_map",
    "ctl", "run", "keys", "key", "Key",
    "Heap", "owns", "usable_size", "collect",
    "install", "uninstall", "installed", "domain_stats", "free_threaded", "InstallError", "DOMAINS",
    "ffi", "lib", "__version__",
]
