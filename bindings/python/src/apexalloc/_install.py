"""_install.py — CPython's own memory on ApexAlloc: install() puts C hooks (csrc/pymem_glue.c)
into the interpreter's allocator domains with PyMem_SetAllocator; uninstall() sends new
allocations back to the previous allocators, while blocks ApexAlloc made are still freed by it."""
from __future__ import annotations

import sys
import sysconfig
from typing import Dict, Iterable, Tuple

from ._core import ffi, lib

DOMAINS = ("raw", "mem", "obj")
_INDEX = {"raw": lib.APEXPY_DOMAIN_RAW, "mem": lib.APEXPY_DOMAIN_MEM, "obj": lib.APEXPY_DOMAIN_OBJ}


class InstallError(RuntimeError):
    """install() cannot work here (the message says why)."""


def _mask(domains: Iterable[str]) -> int:
    if isinstance(domains, str):
        domains = (domains,)
    mask = 0
    for d in domains:
        if d not in _INDEX:
            raise ValueError(f"apexalloc: unknown allocator domain {d!r}: "
                             f"expected some of {DOMAINS}")
        mask |= 1 << _INDEX[d]
    if mask == 0:
        raise ValueError("apexalloc: install() needs at least one domain")
    return mask


def _names(mask: int) -> Tuple[str, ...]:
    return tuple(d for d in DOMAINS if mask & (1 << _INDEX[d]))


def free_threaded() -> bool:
    """True on a free-threaded CPython (3.13t and later), where install() refuses."""
    return bool(lib.apexpy_free_threaded_build() or sysconfig.get_config_var("Py_GIL_DISABLED")
                or (hasattr(sys, "_is_gil_enabled") and not sys._is_gil_enabled()))


def install(domains: Iterable[str] = DOMAINS) -> None:
    """Routes the interpreter's allocations of `domains` ("raw", "mem", "obj") to ApexAlloc.

    Blocks made before by the previous allocator (pymalloc, libc) are still freed and resized by
    it; zero-byte requests get unique pointers; the raw domain stays thread-safe without the GIL.
    Raises InstallError when already installed, on a free-threaded build (which needs CPython's
    own mimalloc), under another implementation than CPython, or while tracemalloc is tracing
    (stopping it would put back allocators that cannot free ApexAlloc's blocks)."""
    mask = _mask(domains)
    if sys.implementation.name != "cpython":
        raise InstallError(f"apexalloc.install() needs CPython, not {sys.implementation.name}")
    if free_threaded():
        raise InstallError("apexalloc.install() refuses a free-threaded build: its mem and obj "
                           "domains must stay on CPython's own mimalloc")
    import tracemalloc
    if tracemalloc.is_tracing():
        raise InstallError("apexalloc.install() refuses while tracemalloc is tracing: "
                           "tracemalloc.stop() would restore allocators that cannot free "
                           "ApexAlloc's blocks; start tracemalloc after install() instead")
    code = lib.apexpy_install(mask)
    if code == lib.APEXPY_ERR_ACTIVE:
        raise InstallError(f"apexalloc is already installed (domains {installed()}): "
                           "call uninstall() first")
    if code == lib.APEXPY_ERR_NOMEM:
        raise MemoryError("apexalloc.install(): the allocator could not start")
    if code != lib.APEXPY_OK:
        raise InstallError(f"apexalloc.install(): error {code}")


def uninstall() -> Tuple[str, ...]:
    """New allocations go to the previous allocators again; blocks ApexAlloc made keep being
    freed and resized by ApexAlloc (the hooks stay in place for that). Returns the domains that
    were installed (empty when none was)."""
    return _names(lib.apexpy_uninstall())


def installed() -> Tuple[str, ...]:
    """The domains whose new allocations go to ApexAlloc now."""
    return _names(lib.apexpy_active())


def domain_stats() -> Dict[str, Dict[str, int]]:
    """Per domain: calls served by ApexAlloc (mallocs, callocs, reallocs, frees), the bytes asked
    for, calls of blocks made by the previous allocator that were sent back to it
    (foreign_reallocs, foreign_frees), allocations forwarded after uninstall(), and the hooked /
    active flags."""
    out = {}
    s = ffi.new("apexpy_domain_stats_t *")
    for d in DOMAINS:
        if lib.apexpy_domain_stats(_INDEX[d], s) != 0:
            raise ValueError(f"apexalloc: domain {d!r}")
        out[d] = {name: int(getattr(s, name)) for name, _ in ffi.typeof(s[0]).fields}
    return out


__all__ = ["install", "uninstall", "installed", "domain_stats", "free_threaded", "InstallError",
           "DOMAINS"]
