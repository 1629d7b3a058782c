"""numpy over a heap's memory: numpy.frombuffer gives a writable array on the view, and the heap
refuses to destroy or free that memory while the array lives (numpy is installed in the CTest
venv by tests/ctest_venv.sh)."""
from __future__ import annotations

import numpy as np
import pytest

import apexalloc


def test_frombuffer_is_writable_and_keeps_the_memory_alive():
    h = apexalloc.Heap()
    v = h.alloc(8 * 1000, align=64)
    a = np.frombuffer(v, dtype=np.float64)
    assert a.flags.writeable and a.ctypes.data % 64 == 0
    a[:] = np.arange(1000)
    assert v[8:16].cast("d")[0] == 1.0                     # the same bytes
    with pytest.raises(BufferError):
        h.free(v)
    with pytest.raises(BufferError):
        h.destroy()
    assert a.sum() == 999 * 1000 / 2                      # still valid memory
    del a
    h.destroy()
    with pytest.raises(ValueError):
        v[0]


def test_arrays_on_calloc_memory_start_zeroed():
    with apexalloc.Heap() as h:
        v = h.calloc(4096, 4)
        a = np.frombuffer(v, dtype=np.int32)
        assert not a.any() and a.size == 4096
        del a
