"""_heap.py — ApexAlloc heaps as Python objects whose allocations are writable memoryviews.

The rule that keeps freed memory out of reach (documented in README.md, "Heaps"):
  - Heap.alloc / Heap.calloc return a memoryview of exactly the bytes asked for. The heap keeps
    that view, and a weak reference to the buffer object under it.
  - Heap.free(view), Heap.destroy() and Heap.close() release the views they free
    (memoryview.release()): any later use of such a view raises ValueError, never crashes.
  - Memory that is still reachable another way (a slice or another memoryview of the view, a
    numpy array over it, the view's .obj) is never freed: free() and destroy() raise BufferError
    and leave it allocated (and the heap alive); drop those objects and call again (the released
    view is still accepted by free()).
Reachability is exact: every object that can reach the memory holds the buffer object under the
view (or an export of the view itself, which then cannot be released), so the memory is
unreachable exactly when that buffer object is gone. Raw addresses taken with ctypes or cffi are
outside this rule, as they are for any Python buffer.
"""
from __future__ import annotations

import errno as _errno
import gc
import threading
import warnings
import weakref
from typing import Any, Dict, Iterator, List, Optional, Tuple

from ._core import NULL, address_of, check, ffi, lib, raise_errno
from ._stats import snapshot_dict


class _Block:
    __slots__ = ("ptr", "size", "view", "buffer")

    def __init__(self, ptr: Any, size: int, view: memoryview, buffer: "weakref.ref[Any]") -> None:
        self.ptr = ptr            # cdata void *: the allocation's start
        self.size = size          # bytes asked for (the view's length)
        self.view = view          # the memoryview handed out
        self.buffer = buffer      # weak reference to the cffi buffer under the view

    def reachable(self) -> bool:
        return self.buffer() is not None


def _check_size(value: int, what: str) -> int:
    if not isinstance(value, int):
        raise TypeError(f"apexalloc: {what} must be an int, not {type(value).__name__}")
    if value < 0 or value >= 2**64:
        raise ValueError(f"apexalloc: {what} {value} is out of range")
    return value


_heaps: "weakref.WeakSet[Heap]" = weakref.WeakSet()


class Heap:
    """A heap of its own: allocations are writable memoryviews, freed one by one (free) or all at
    once (destroy / close, or leaving a `with` block).

    `limit` (bytes, usable sizes) bounds the live memory of the heap: an allocation that would go
    over it raises MemoryError. A heap may be used from any thread (its creator allocates without
    a lock; others take the heap's mutex in the library)."""

    def __init__(self, limit: Optional[int] = None) -> None:
        self._lock = threading.RLock()
        self._blocks: Dict[int, _Block] = {}
        self._by_view: Dict[int, int] = {}     # id(view handed out) -> address, for released views
        self._h: Any = NULL
        opts = ffi.new("apex_heap_options_t *")
        opts.size = ffi.sizeof("apex_heap_options_t")
        opts.limit = 0 if limit is None else _check_size(limit, "limit")
        h = lib.apex_heap_new_ex(opts)
        if h == NULL:
            raise_errno(ffi.errno, "apex_heap_new_ex")
        self._h = h
        self.limit = limit
        _heaps.add(self)

    # ---- allocation ---------------------------------------------------------------------------
    def _live_handle(self) -> Any:
        if self._h == NULL:
            raise ValueError("apexalloc: the heap is destroyed")
        return self._h

    def _hand_out(self, ptr: Any, size: int, what: str) -> memoryview:
        if ptr == NULL:
            code = ffi.errno
            if code == _errno.ENOMEM:
                raise MemoryError(f"apexalloc: {what}: {size} bytes: out of memory or over the "
                                  f"heap's limit ({self.limit})")
            raise_errno(code, what)
        buffer = ffi.buffer(ptr, size)
        view = memoryview(buffer)
        addr = int(ffi.cast("uintptr_t", ptr))
        self._blocks[addr] = _Block(ptr, size, view, weakref.ref(buffer))
        self._by_view[id(view)] = addr
        return view

    def alloc(self, size: int, align: int = 0) -> memoryview:
        """A writable memoryview of exactly `size` bytes (not zeroed), aligned to `align` (0: the
        default 16, else a power of two; anything else raises ValueError)."""
        _check_size(size, "size")
        _check_size(align, "align")
        with self._lock:
            p = lib.apex_heap_alloc(self._live_handle(), size, align)
            return self._hand_out(p, size, "alloc")

    def calloc(self, count: int, size: int = 1, align: int = 0) -> memoryview:
        """Like alloc, for count*size zeroed bytes (calloc(n) is n zeroed bytes)."""
        _check_size(count, "count")
        _check_size(size, "size")
        _check_size(align, "align")
        with self._lock:
            p = lib.apex_heap_calloc(self._live_handle(), count, size, align)
            return self._hand_out(p, count * size, "calloc")

    def _block_of(self, buf: Any) -> Tuple[int, _Block]:
        addr = self._by_view.get(id(buf))
        if addr is None or self._blocks[addr].view is not buf:
            addr = address_of(buf)      # a released view that is no longer ours: ValueError
        block = self._blocks.get(addr)
        if block is None:
            raise ValueError(f"apexalloc: {addr:#x} is not a live allocation of this heap")
        return addr, block

    def _release(self, block: _Block) -> bool:
        """Releases the view handed out for block; True when the memory is unreachable now."""
        try:
            block.view.release()
        except BufferError:
            return False                # exported further (numpy, another consumer)
        return not block.reachable()

    def free(self, buf: memoryview) -> None:
        """Frees the allocation `buf` (a view returned by alloc/calloc) after releasing the view.
        If the memory is still reachable from another object (see the module's rule), raises
        BufferError and keeps it allocated (the view stays released; free(buf) again once those
        objects are gone). ValueError if buf is not a live allocation of this heap (freed
        already, foreign, or interior)."""
        with self._lock:
            self._live_handle()
            addr, block = self._block_of(buf)
            if not self._release(block):
                gc.collect()
                if block.reachable():
                    raise BufferError(f"apexalloc: {addr:#x} is still reachable from another "
                                      f"object (a slice, a memoryview or array made from it)")
            del self._blocks[addr]
            del self._by_view[id(block.view)]
            lib.apex_free(block.ptr)

    # ---- questions ----------------------------------------------------------------------------
    def owns(self, buf: Any) -> bool:
        """True when `buf` starts at a live allocation of this heap."""
        try:
            addr = address_of(buf)
        except (TypeError, ValueError):
            return False
        with self._lock:
            return self._h != NULL and addr in self._blocks

    def usable_size(self, buf: Any) -> int:
        """Bytes usable at the allocation `buf` (at least its length)."""
        with self._lock:
            self._live_handle()
            _, block = self._block_of(buf)
            return int(lib.apex_usable_size(block.ptr))

    def stats(self) -> Dict[str, int]:
        """This heap's statistics (apex_heap_stats_get), the fields of apexalloc.stats()."""
        with self._lock:
            s = ffi.new("apex_stats_t *")
            check(lib.apex_heap_stats_get(self._live_handle(), s, ffi.sizeof("apex_stats_t")),
                  "apex_heap_stats_get")
            return snapshot_dict(s)

    def visit(self) -> Iterator[Tuple[int, int]]:
        """(address, usable size) of every live object of the heap, walked by the library
        (apex_heap_visit). The walk is done when visit() returns; the iterator reads its result."""
        with self._lock:
            h = self._live_handle()
            count = ffi.new("size_t *")
            room = max(len(self._blocks), 16)
            while True:
                out = ffi.new("apexpy_object_t[]", room)
                check(lib.apexpy_heap_objects(h, out, room, count), "apex_heap_visit")
                if count[0] <= room:
                    break
                room = count[0] + 16
            objects: List[Tuple[int, int]] = [
                (int(ffi.cast("uintptr_t", out[i].ptr)), int(out[i].size)) for i in range(count[0])]
        return iter(objects)

    def __len__(self) -> int:
        """Allocations of this heap made through this object and not yet freed."""
        return len(self._blocks)

    @property
    def closed(self) -> bool:
        return self._h == NULL

    # ---- the end ------------------------------------------------------------------------------
    def destroy(self) -> None:
        """Frees every allocation of the heap at once and the heap itself, after releasing every
        view it handed out. If some of its memory is still reachable from another object (see the
        module's rule), raises BufferError and frees nothing (the views stay released); drop
        those objects and call again. A second call after success does nothing."""
        with self._lock:
            if self._h == NULL:
                return
            stuck = [addr for addr, b in self._blocks.items() if not self._release(b)]
            if stuck:
                gc.collect()
                stuck = [addr for addr in stuck if self._blocks[addr].reachable()]
            if stuck:
                raise BufferError(f"apexalloc: cannot destroy the heap: {len(stuck)} of its "
                                  f"allocations (first at {stuck[0]:#x}) are still reachable from "
                                  f"other objects (slices, memoryviews or arrays made from them)")
            h, self._h = self._h, NULL
            self._blocks.clear()
            self._by_view.clear()
            check(lib.apex_heap_destroy(h), "apex_heap_destroy")

    close = destroy

    def __enter__(self) -> "Heap":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.destroy()

    def __del__(self) -> None:
        # Garbage-collected without close(): free it all if nothing can reach its memory, else
        # only delete the handle (the objects stay valid, and are leaked) and warn.
        if getattr(self, "_h", NULL) == NULL:
            return
        try:
            if all(self._release(b) for b in list(self._blocks.values())):
                self._blocks.clear()
                h, self._h = self._h, NULL
                lib.apex_heap_destroy(h)
                return
            warnings.warn("apexalloc.Heap collected while its memory is still reachable: call "
                          "destroy() or use `with`", ResourceWarning, stacklevel=2)
            h, self._h = self._h, NULL
            lib.apex_heap_delete(h)
        except Exception:   # noqa: BLE001 - interpreter shutdown: never raise from __del__
            pass

    def __repr__(self) -> str:
        state = "destroyed" if self._h == NULL else f"{len(self._blocks)} allocations"
        return f"<apexalloc.Heap limit={self.limit} {state}>"


def owns(buf: Any) -> bool:
    """True when `buf` starts at a live allocation of this package's ApexAlloc (apex_owns: any
    heap; never raises for foreign memory)."""
    try:
        addr = address_of(buf)
    except (TypeError, ValueError):
        return False
    return bool(lib.apex_owns(ffi.cast("void *", addr)))


def usable_size(buf: Any) -> int:
    """Bytes usable at `buf`, an allocation of a live Heap (ValueError otherwise)."""
    for heap in list(_heaps):
        if heap.owns(buf):
            return heap.usable_size(buf)
    raise ValueError("apexalloc: not a live allocation of a Heap")


def collect() -> None:
    """Frees what exited threads left behind and returns cached memory (apex_collect)."""
    lib.apex_collect()


__all__ = ["Heap", "owns", "usable_size", "collect"]
