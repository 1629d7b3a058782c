"""_stats.py — statistics as Python data: the global, thread and per-size-class snapshots, and
the text/JSON statistics and the SVG/JSON heap map written through a Python write callback."""
from __future__ import annotations

import codecs
import io
import os
import sys
from typing import IO, Any, Dict, List, Optional, Union

from ._core import check, ffi, lib

_FORMATS = {"text": lib.APEX_FORMAT_TEXT, "json": lib.APEX_FORMAT_JSON, "svg": lib.APEX_FORMAT_SVG}


def snapshot_dict(struct: Any) -> Dict[str, int]:
    """The fields of a filled snapshot struct (apex_stats_t, apex_bin_stats_t) as a dict: every
    field the library filled in (its `size` says how far), in the header's order, `size` left out.
    New fields of the header appear here without a change to this code."""
    filled = struct.size
    out = {}
    for name, field in ffi.typeof(struct[0]).fields:
        if name == "size":
            continue
        if field.offset + ffi.sizeof(field.type) <= filled:
            out[name] = int(getattr(struct, name))
    return out


def stats() -> Dict[str, int]:
    """Process-wide statistics (apex_stats_get): bytes allocated, mapped, resident ... as a dict.
    Exact while the process is quiescent, approximate while other threads allocate."""
    s = ffi.new("apex_stats_t *")
    check(lib.apex_stats_get(s, ffi.sizeof("apex_stats_t")), "apex_stats_get")
    return snapshot_dict(s)


def thread_stats() -> Dict[str, int]:
    """The calling thread's default heap (apex_thread_stats_get), same fields as stats()."""
    s = ffi.new("apex_stats_t *")
    check(lib.apex_thread_stats_get(s, ffi.sizeof("apex_stats_t")), "apex_thread_stats_get")
    return snapshot_dict(s)


def bin_stats() -> List[Dict[str, int]]:
    """One dict per size class ("bin"), index 0 .. APEX_BIN_COUNT-1 (bin 0 counts large
    objects): chunk_size, count (live objects), blocks, blocks_partial, free_bytes; plus `bin`."""
    out = []
    b = ffi.new("apex_bin_stats_t *")
    for i in range(lib.APEX_BIN_COUNT):
        check(lib.apex_bin_stats_get(i, b, ffi.sizeof("apex_bin_stats_t")), f"bin {i}")
        d = {"bin": i}
        d.update(snapshot_dict(b))
        out.append(d)
    return out


# ---- Output through the C write callback ------------------------------------------------------
class _Sink:
    """Where apexpy_write sends the pieces of text: a binary or text file. An exception raised by
    the file is kept and raised again once the C call has returned."""

    def __init__(self, file: Any) -> None:
        self.file = file
        self.binary = _is_binary(file)
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.error: Optional[BaseException] = None

    def write(self, data: bytes) -> None:
        if self.error is not None:
            return
        try:
            if self.binary:
                self.file.write(data)
            else:
                self.file.write(self.decoder.decode(data))
        except BaseException as e:  # noqa: BLE001 - raised again after the C call
            self.error = e

    def finish(self) -> None:
        if self.error is None and not self.binary:
            rest = self.decoder.decode(b"", final=True)
            if rest:
                self.file.write(rest)
        if self.error is not None:
            raise self.error


def _is_binary(file: Any) -> bool:
    if isinstance(file, (io.RawIOBase, io.BufferedIOBase)):
        return True
    if isinstance(file, io.TextIOBase):
        return False
    return "b" in getattr(file, "mode", "")


@ffi.def_extern()
def apexpy_write(opaque: Any, text: Any, length: int) -> None:
    ffi.from_handle(opaque).write(ffi.unpack(text, length))


def _emit(fn: Any, file: Any, fmt: int, what: str) -> None:
    sink = _Sink(file)
    handle = ffi.new_handle(sink)
    code = fn(lib.apexpy_write, handle, fmt)
    sink.finish()
    check(code, what)


def _format(name: str, allowed: tuple) -> int:
    if name not in allowed:
        raise ValueError(f"apexalloc: format {name!r}: expected one of {', '.join(allowed)}")
    return _FORMATS[name]


def print_stats(file: Optional[IO[Any]] = None, format: str = "text") -> None:
    """Writes the statistics (global, per size class, per heap) to `file` (default sys.stdout,
    a text or binary file) as "text" or one "json" object (apex_stats_print)."""
    fmt = _format(format, ("text", "json"))
    _emit(lib.apex_stats_print, sys.stdout if file is None else file, fmt, "apex_stats_print")


def heap_map(path_or_file: Union[str, "os.PathLike[str]", IO[Any], None] = None,
             format: str = "svg") -> Optional[str]:
    """Draws the heap map (every superblock and block) as "svg" or describes it as "json"
    (apex_heap_map): into the file at a path, into an open (text or binary) file, or, with no
    argument, returned as a str."""
    fmt = _format(format, ("svg", "json"))
    if path_or_file is None:
        out = io.StringIO()
        _emit(lib.apex_heap_map, out, fmt, "apex_heap_map")
        return out.getvalue()
    if isinstance(path_or_file, (str, bytes, os.PathLike)):
        with open(path_or_file, "wb") as f:
            _emit(lib.apex_heap_map, f, fmt, "apex_heap_map")
        return None
    _emit(lib.apex_heap_map, path_or_file, fmt, "apex_heap_map")
    return None


__all__ = ["stats", "thread_stats", "bin_stats", "print_stats", "heap_map"]
