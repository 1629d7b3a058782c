"""_core.py — the compiled module and the one mapping of ApexAlloc's errno codes to Python's
exceptions, shared by the rest of the package."""
from __future__ import annotations

import errno as _errno
from typing import NoReturn

from ._ffi import ffi, lib

NULL = ffi.NULL


def raise_errno(code: int, what: str) -> NoReturn:
    """Raises the exception for an errno value returned (or set) by the core. `what` names the
    key, heap or call, and goes into the message."""
    if code == _errno.ENOENT:
        raise KeyError(f"apexalloc: {what}: no such key")
    if code == _errno.EPERM:
        raise PermissionError(code, f"apexalloc: {what}: read-only")
    if code == _errno.EINVAL:
        raise ValueError(f"apexalloc: {what}: invalid argument (EINVAL)")
    if code == _errno.ENOMEM:
        raise MemoryError(f"apexalloc: {what}: out of memory (ENOMEM)")
    raise OSError(code, f"apexalloc: {what}: {_errno.errorcode.get(code, code)}")


def check(code: int, what: str) -> None:
    if code != 0:
        raise_errno(code, what)


def address_of(buf: object) -> int:
    """The address of the first byte of any object with the buffer protocol (a memoryview made
    by Heap.alloc, bytes, bytearray, array ...). A released memoryview raises ValueError."""
    return int(ffi.cast("uintptr_t", ffi.from_buffer("char[]", buf)))
