"""apexalloc.Heap: allocations as writable memoryviews, limits, visit, owns, threads, and the rule
that no Python object can reach freed memory (views released; BufferError while reachable)."""
from __future__ import annotations

import ctypes
import gc
import pickle
import random
import struct
import threading
import warnings

import pytest

import apexalloc
from apexalloc import ffi, lib


def address(view) -> int:
    return int(ffi.cast("uintptr_t", ffi.from_buffer(view)))


# ---- allocation --------------------------------------------------------------------------------
def test_alloc_is_a_writable_view_of_exactly_size_bytes():
    with apexalloc.Heap() as h:
        for size in (0, 1, 15, 16, 17, 100, 4096, 100_000, 5 << 20):
            v = h.alloc(size)
            assert isinstance(v, memoryview)
            assert len(v) == v.nbytes == size and not v.readonly and v.format == "B"
            if size:
                v[-1] = 0xCD
                v[0] = 0xAB
                assert v[0] == 0xAB and v[-1] == (0xCD if size > 1 else 0xAB)
            assert h.usable_size(v) >= size
            assert address(v) % 16 == 0


def test_views_work_with_struct_slicing_and_ctypes():
    with apexalloc.Heap() as h:
        v = h.alloc(64)
        struct.pack_into("<QQd", v, 8, 1, 2**63, 2.5)
        assert struct.unpack_from("<QQd", v, 8) == (1, 2**63, 2.5)
        v[0:4] = b"abcd"
        assert bytes(v[:4]) == b"abcd" and v.tobytes()[:4] == b"abcd"
        arr = (ctypes.c_uint32 * 16).from_buffer(v)
        arr[15] = 0xDEADBEEF
        assert struct.unpack_from("<I", v, 60) == (0xDEADBEEF,)
        del arr


def test_calloc_is_zeroed_even_where_a_freed_block_was_dirty():
    with apexalloc.Heap() as h:
        dirty = [h.alloc(256) for _ in range(50)]
        for v in dirty:
            v[:] = b"\xff" * 256
        for v in dirty:
            h.free(v)
        for _ in range(50):
            z = h.calloc(256)
            assert z.tobytes() == bytes(256)
        z2 = h.calloc(10, 8)
        assert len(z2) == 80 and z2.tobytes() == bytes(80)


def test_alignment():
    with apexalloc.Heap() as h:
        for align in (16, 64, 4096, 1 << 16, 1 << 21):
            v = h.alloc(100, align=align)
            assert address(v) % align == 0
        with pytest.raises(ValueError):
            h.alloc(100, align=24)                        # not a power of two: EINVAL
        with pytest.raises(ValueError):
            h.alloc(-1)
        with pytest.raises(TypeError):
            h.alloc(1.5)


def test_limit_gives_memoryerror_and_the_heap_keeps_working():
    with apexalloc.Heap(limit=1 << 20) as h:
        a = h.alloc(600_000)
        with pytest.raises(MemoryError, match="limit"):
            h.alloc(600_000)
        with pytest.raises(MemoryError):
            h.calloc(2, 1 << 20)
        h.free(a)
        b = h.alloc(600_000)                                # room again after the free
        assert len(b) == 600_000
        assert h.stats()["allocated"] <= 1 << 20


def test_calloc_overflow_is_memoryerror():
    with apexalloc.Heap() as h:
        with pytest.raises(MemoryError):
            h.calloc(2**62, 8)


def test_impossible_size_is_memoryerror():
    with apexalloc.Heap() as h:
        with pytest.raises(MemoryError):
            h.alloc(2**63)


# ---- free, owns, usable_size -------------------------------------------------------------------
def test_free_releases_the_view_and_refuses_twice():
    with apexalloc.Heap() as h:
        v = h.alloc(100)
        h.free(v)
        with pytest.raises(ValueError):
            v[0]                                            # released: never the freed memory
        with pytest.raises(ValueError):
            h.free(v)
        assert len(h) == 0 and h.stats()["allocated"] == 0


def test_free_of_foreign_or_interior_memory_is_valueerror():
    with apexalloc.Heap() as h, apexalloc.Heap() as other:
        v = h.alloc(100)
        w = other.alloc(100)
        with pytest.raises(ValueError):
            h.free(bytearray(100))
        with pytest.raises(ValueError):
            h.free(w)                                       # another heap's
        with pytest.raises(ValueError):
            h.free(v[16:])                                  # interior
        assert h.owns(v) and not h.owns(w) and other.owns(w)


def test_owns_and_module_owns():
    with apexalloc.Heap() as h:
        v = h.alloc(100)
        assert h.owns(v) and apexalloc.owns(v)
        assert not h.owns(v[1:]) and not apexalloc.owns(v[16:])
        assert not apexalloc.owns(b"x" * 100) and not apexalloc.owns(bytearray(50))
        assert not h.owns(42) and not apexalloc.owns(42)
        h.free(v)
        assert not h.owns(v) and not apexalloc.owns(v)
    assert not h.owns(bytearray(1))


def test_usable_size_module_and_heap():
    with apexalloc.Heap() as h:
        v = h.alloc(100)
        assert apexalloc.usable_size(v) == h.usable_size(v) >= 100
        with pytest.raises(ValueError):
            apexalloc.usable_size(bytearray(10))


# ---- visit --------------------------------------------------------------------------------------
def test_visit_reports_exactly_the_live_allocations():
    rng = random.Random(7)
    with apexalloc.Heap() as h:
        live = {}
        for _ in range(3000):
            if live and rng.random() < 0.4:
                addr = rng.choice(list(live))
                h.free(live.pop(addr))
            else:
                size = rng.choice((0, 8, 100, 1000, 20_000, 200_000, 5_000_000))
                v = h.alloc(size)
                live[address(v)] = v
        seen = dict(h.visit())
        assert set(seen) == set(live)
        for addr, v in live.items():
            assert seen[addr] == h.usable_size(v) >= len(v)
        assert sum(seen.values()) == h.stats()["allocated"]


def test_visit_of_an_empty_heap():
    with apexalloc.Heap() as h:
        assert list(h.visit()) == []


# ---- destroy with live views --------------------------------------------------------------------
def test_destroy_releases_every_view():
    h = apexalloc.Heap()
    views = [h.alloc(n) for n in (10, 1000, 100_000, 5_000_000)]
    h.destroy()
    assert h.closed
    for v in views:
        with pytest.raises(ValueError):
            v[0]
        with pytest.raises(ValueError):
            bytes(v)
    h.destroy()                                              # again: nothing to do
    with pytest.raises(ValueError, match="destroyed"):
        h.alloc(10)
    with pytest.raises(ValueError, match="destroyed"):
        h.stats()
    with pytest.raises(ValueError, match="destroyed"):
        list(h.visit())


def test_destroy_refuses_while_a_slice_reaches_the_memory():
    h = apexalloc.Heap()
    v = h.alloc(100)
    v[:3] = b"abc"
    part = v[1:3]
    with pytest.raises(BufferError, match="reachable"):
        h.destroy()
    assert not h.closed and bytes(part) == b"bc"            # the memory is still there
    del part
    h.destroy()
    assert h.closed


def test_destroy_refuses_while_an_exporter_holds_the_view():
    h = apexalloc.Heap()
    v = h.alloc(64)
    pb = pickle.PickleBuffer(v)                              # holds an export of the view itself
    with pytest.raises(BufferError):
        h.destroy()
    v[0] = ord("z")                                          # an exported view cannot be released
    assert bytes(pb.raw()[:1]) == b"z"
    del pb
    h.destroy()
    with pytest.raises(ValueError):
        v[0]


def test_destroy_refuses_while_a_ctypes_array_maps_the_memory():
    h = apexalloc.Heap()
    v = h.alloc(64)
    arr = (ctypes.c_char * 64).from_buffer(v)                # keeps a memoryview of its own
    with pytest.raises(BufferError):
        h.destroy()
    arr[0] = b"z"                                            # the memory is still allocated
    assert arr[0] == b"z"
    del arr
    h.destroy()
    with pytest.raises(ValueError):
        v[0]


def test_destroy_refuses_while_the_buffer_object_is_held():
    h = apexalloc.Heap()
    v = h.alloc(32)
    under = v.obj                                            # the buffer object itself
    with pytest.raises(BufferError):
        h.destroy()
    mv2 = memoryview(under)
    mv2[0] = 7
    del under, mv2
    h.destroy()


def test_free_refuses_while_reachable_then_works():
    with apexalloc.Heap() as h:
        v = h.alloc(100)
        keep = memoryview(v)[10:20]
        with pytest.raises(BufferError):
            h.free(v)
        keep[0] = 1                                          # still valid memory
        del keep
        h.free(v)
        assert len(h) == 0


def test_with_block_destroys_and_views_die():
    with apexalloc.Heap() as h:
        v = h.alloc(10)
    assert h.closed
    with pytest.raises(ValueError):
        v[0] = 1


def test_collected_heap_is_destroyed_or_warns_when_still_reachable():
    before = apexalloc.stats()["allocated"]
    h = apexalloc.Heap()
    v = h.alloc(1_000_000)
    del h
    gc.collect()
    with pytest.raises(ValueError):
        v[0]                                                 # destroyed by __del__: released
    assert apexalloc.stats()["allocated"] <= before + 4096

    h = apexalloc.Heap()
    v = h.alloc(100)
    part = v[0:10]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del h
        gc.collect()
    assert any(issubclass(w.category, ResourceWarning) for w in caught)
    part[0] = 5                                              # memory stays valid (deleted handle)
    assert part[0] == 5


# ---- threads ------------------------------------------------------------------------------------
def test_one_heap_from_several_threads():
    h = apexalloc.Heap()
    errors = []
    views_per_thread = {}

    def worker(seed: int) -> None:
        try:
            rng = random.Random(seed)
            mine = []
            for i in range(2000):
                if mine and rng.random() < 0.45:
                    v = mine.pop(rng.randrange(len(mine)))
                    if v[0] != seed or v[-1] != seed:
                        errors.append("corrupted")
                    h.free(v)
                else:
                    v = h.alloc(rng.choice((1, 40, 300, 5000, 70_000)))
                    v[0] = seed
                    v[-1] = seed
                    mine.append(v)
            views_per_thread[seed] = mine
        except BaseException as e:   # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    live = {address(v) for mine in views_per_thread.values() for v in mine}
    assert set(dict(h.visit())) == live and len(h) == len(live)
    for seed, mine in views_per_thread.items():
        assert all(v[0] == seed for v in mine)
    h.destroy()


def test_a_heap_per_thread_and_frees_from_another_thread():
    made = {}

    def worker(i: int) -> None:
        h = apexalloc.Heap(limit=8 << 20)
        made[i] = (h, [h.alloc(1000 + i) for _ in range(500)])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # The creating threads are gone: the main thread frees and destroys their heaps.
    for i, (h, views) in made.items():
        for v in views[::2]:
            h.free(v)
        assert len(list(h.visit())) == 250
        more = h.alloc(50)                                   # the orphaned heap is still usable
        assert len(more) == 50
        h.destroy()
        assert h.closed
        for v in views:
            with pytest.raises(ValueError):
                v[0]


def test_destroy_from_another_thread_than_the_creator():
    h = apexalloc.Heap()
    v = h.alloc(100)
    t = threading.Thread(target=h.destroy)
    t.start()
    t.join()
    assert h.closed
    with pytest.raises(ValueError):
        v[0]
