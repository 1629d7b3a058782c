"""The module-level API: statistics as dicts, the ctl registry with typed reads/writes and every
error mapping, print_stats and heap_map through the C write callback."""
from __future__ import annotations

import io
import json
import re
import threading

import pytest

import apexalloc
from apexalloc import ffi, lib


def test_version_matches_the_header_constants():
    major, minor, patch = (int(x) for x in apexalloc.__version__.split("."))
    assert (major, minor, patch) == (lib.APEX_VERSION_MAJOR, lib.APEX_VERSION_MINOR,
                                     lib.APEX_VERSION_PATCH)
    assert apexalloc.ctl("version") == apexalloc.__version__


def test_stats_has_every_field_of_the_struct_and_moves_with_a_heap():
    fields = [name for name, _ in ffi.typeof("apex_stats_t").fields if name != "size"]
    before = apexalloc.stats()
    assert list(before) == fields
    assert all(isinstance(v, int) and v >= 0 for v in before.values())
    with apexalloc.Heap() as h:
        views = [h.alloc(1000) for _ in range(100)]
        during = apexalloc.stats()
        assert during["allocated"] >= before["allocated"] + 100 * 1000
        assert during["mapped"] >= during["allocated"]
        del views
    after = apexalloc.stats()
    assert after["allocated"] <= during["allocated"] - 100 * 1000


def test_stats_agree_with_the_ctl_keys():
    # Quiescent process: the snapshot and the ctl keys read the same figures.
    s = apexalloc.stats()
    assert apexalloc.ctl("stats.allocated") == s["allocated"]
    assert apexalloc.ctl("stats.blocks") == s["blocks"]


def test_thread_stats_count_this_threads_default_heap_only():
    t0 = apexalloc.thread_stats()
    assert set(t0) == set(apexalloc.stats())
    out = {}

    def other():
        p = lib.apex_malloc(5000)
        out["other"] = apexalloc.thread_stats()["thread_allocated"]
        lib.apex_free(p)
    p = lib.apex_malloc(3000)
    t1 = apexalloc.thread_stats()
    th = threading.Thread(target=other)
    th.start()
    th.join()
    lib.apex_free(p)
    assert t1["thread_allocated"] >= t0["thread_allocated"] + 3000
    assert out["other"] >= 5000


def test_bin_stats_list_every_size_class():
    with apexalloc.Heap() as h:
        keep = [h.alloc(48) for _ in range(200)]
        bins = apexalloc.bin_stats()
        assert len(bins) == lib.APEX_BIN_COUNT
        assert [b["bin"] for b in bins] == list(range(lib.APEX_BIN_COUNT))
        assert bins[0]["chunk_size"] == 0          # bin 0: large objects
        sizes = [b["chunk_size"] for b in bins[1:]]
        assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)
        b48 = next(b for b in bins if b["chunk_size"] == 48)
        assert b48["count"] >= 200 and b48["blocks"] >= 1
        assert apexalloc.ctl(f"stats.bins.{b48['bin']}.size") == 48
        del keep


# ---- keys ---------------------------------------------------------------------------------------
def test_keys_are_the_registry_records():
    ks = apexalloc.keys()
    assert len(ks) == lib.apex_ctl_count()
    names = [k.name for k in ks]
    assert "stats.allocated" in names and "heap.collect" in names
    for k in ks:
        assert k.type in ("bool", "size", "string", "command")
        assert isinstance(k.writable, bool) and isinstance(k.description, str) and k.description
        assert k.env is None or re.fullmatch(r"APEX_[A-Z0-9_]+", k.env)
        assert ("<i>" in k.name) == (k.index_count > 0)
    show = apexalloc.key("opt.show_stats")
    assert show == apexalloc.Key("opt.show_stats", "bool", "", True, show.description,
                                 "APEX_SHOW_STATS", 0)
    assert apexalloc.key("stats.bins.7.count").name == "stats.bins.<i>.count"
    assert apexalloc.key("no.such.key") is None


def test_every_readable_key_reads_with_its_registry_type():
    for k in apexalloc.keys():
        if k.type == "command":
            continue
        names = [k.name.replace("<i>", str(i)) for i in (0, k.index_count - 1)] \
            if k.index_count else [k.name]
        for name in names:
            v = apexalloc.ctl(name)
            assert isinstance(v, {"bool": bool, "size": int, "string": str}[k.type]), name


# ---- ctl writes and errors ----------------------------------------------------------------------
def test_ctl_write_returns_the_old_value_and_stores_the_new():
    old = apexalloc.ctl("opt.decay_ms")
    try:
        assert apexalloc.ctl("opt.decay_ms", old + 123) == old
        assert apexalloc.ctl("opt.decay_ms") == old + 123
    finally:
        apexalloc.ctl("opt.decay_ms", old)
    flag = apexalloc.ctl("opt.show_stats")
    assert apexalloc.ctl("opt.show_stats", True) is flag
    assert apexalloc.ctl("opt.show_stats") is True
    apexalloc.ctl("opt.show_stats", flag)


def test_unknown_key_is_a_keyerror_naming_the_key():
    with pytest.raises(KeyError, match="no.such.key"):
        apexalloc.ctl("no.such.key")
    with pytest.raises(KeyError, match="no.such.key"):
        apexalloc.ctl("no.such.key", 1)
    with pytest.raises(KeyError, match="no.such.command"):
        apexalloc.run("no.such.command")


def test_index_out_of_range_is_a_keyerror():
    n = apexalloc.key("stats.bins.<i>.count").index_count
    with pytest.raises(KeyError, match=f"stats.bins.{n}.count"):
        apexalloc.ctl(f"stats.bins.{n}.count")


def test_write_to_a_read_only_key_is_a_permissionerror():
    with pytest.raises(PermissionError, match="stats.allocated"):
        apexalloc.ctl("stats.allocated", 5)
    with pytest.raises(PermissionError, match="opt.secure"):
        apexalloc.ctl("opt.secure", 1)


def test_bad_values_are_valueerror_or_typeerror():
    with pytest.raises(ValueError, match="opt.show_stats"):
        apexalloc.ctl("opt.show_stats", 2)              # the library refuses (EINVAL)
    with pytest.raises(ValueError, match="opt.superblock_cache"):
        apexalloc.ctl("opt.superblock_cache", 10**9)     # out of the option's range (EINVAL)
    with pytest.raises(ValueError, match="opt.decay_ms"):
        apexalloc.ctl("opt.decay_ms", -1)
    with pytest.raises(TypeError, match="opt.decay_ms"):
        apexalloc.ctl("opt.decay_ms", "10")
    with pytest.raises(TypeError, match="opt.show_stats"):
        apexalloc.ctl("opt.show_stats", "yes")
    with pytest.raises(TypeError, match="heap.collect"):
        apexalloc.ctl("heap.collect")                    # a command is run, not read
    with pytest.raises(TypeError, match="stats.allocated"):
        apexalloc.run("stats.allocated")                 # not a command
    with pytest.raises(TypeError):
        apexalloc.ctl(42)
    with pytest.raises(TypeError):
        apexalloc.ctl("opt.decay_ms", 1, 2)


def test_raw_einval_from_the_library_maps_to_valueerror():
    # A read with the wrong size reaches the library's own EINVAL.
    buf = ffi.new("int *")
    n = ffi.new("size_t *", ffi.sizeof("int"))
    code = lib.apex_ctl(b"stats.allocated", buf, n, ffi.NULL, 0)
    with pytest.raises(ValueError, match="stats.allocated"):
        apexalloc._core.check(code, "ctl key 'stats.allocated'")


def test_run_commands():
    apexalloc.run("heap.collect")
    apexalloc.run("stats.reset")
    assert apexalloc.ctl("stats.peak") == apexalloc.ctl("stats.mapped")


def test_collect_returns_cached_memory():
    with apexalloc.Heap() as h:
        keep = [h.alloc(100_000) for _ in range(100)]      # about 10 MB of superblocks
        del keep
    cached = apexalloc.stats()["mapped"]                 # empty superblocks wait in the cache
    apexalloc.collect()
    assert apexalloc.stats()["mapped"] < cached


# ---- print_stats and heap_map -------------------------------------------------------------------
def test_print_stats_text_to_a_text_file():
    out = io.StringIO()
    apexalloc.print_stats(out)
    text = out.getvalue()
    assert text.startswith("ApexAlloc ") and "allocated" in text


def test_print_stats_json_to_a_binary_file_is_one_json_object():
    out = io.BytesIO()
    with apexalloc.Heap() as h:
        keep = h.alloc(777)
        apexalloc.print_stats(out, format="json")
        del keep
    data = json.loads(out.getvalue())
    assert isinstance(data, dict) and data


def test_print_stats_defaults_to_stdout(capsys):
    apexalloc.print_stats()
    assert capsys.readouterr().out.startswith("ApexAlloc ")


def test_print_stats_refuses_an_unknown_format():
    with pytest.raises(ValueError, match="svg"):
        apexalloc.print_stats(io.StringIO(), format="svg")


def test_an_exception_of_the_file_comes_back_after_the_call():
    class Broken(io.TextIOBase):
        def write(self, s):
            raise OSError("disk full")
    with pytest.raises(OSError, match="disk full"):
        apexalloc.print_stats(Broken())


def test_heap_map_svg_and_json_in_every_kind_of_target(tmp_path):
    with apexalloc.Heap() as h:
        keep = [h.alloc(5000) for _ in range(20)]
        svg = apexalloc.heap_map()
        assert "<svg" in svg and svg.rstrip().endswith("</svg>")
        data = json.loads(apexalloc.heap_map(format="json"))
        assert data["superblocks"] and data["version"] == apexalloc.__version__
        apexalloc.heap_map(tmp_path / "map.svg")
        apexalloc.heap_map(str(tmp_path / "map.json"), format="json")
        with open(tmp_path / "map2.json", "w") as f:
            apexalloc.heap_map(f, format="json")
        del keep
    assert (tmp_path / "map.svg").read_text().rstrip().endswith("</svg>")
    assert json.loads((tmp_path / "map.json").read_text())["superblocks"]
    assert json.loads((tmp_path / "map2.json").read_text())["superblocks"]
    with pytest.raises(ValueError, match="text"):
        apexalloc.heap_map(format="text")
