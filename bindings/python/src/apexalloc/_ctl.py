"""_ctl.py — apex_ctl by name: the key registry as records, typed reads and writes, commands.

Every key, its type and its description come from the library's registry (apex_ctl_info), never
from a list here, so a key added to core/ctl.c is reachable at once."""
from __future__ import annotations

import re
from typing import Any, Dict, List, NamedTuple, NoReturn, Optional, Union

from ._core import NULL, check, ffi, lib

_TYPES = {lib.APEX_CTL_BOOL: "bool", lib.APEX_CTL_SIZE: "size", lib.APEX_CTL_STRING: "string",
          lib.APEX_CTL_COMMAND: "command"}
_CTYPES = {"bool": "int", "size": "size_t", "string": "char *"}

Value = Union[bool, int, str]


class Key(NamedTuple):
    """One entry of the ctl registry."""
    name: str            # e.g. "stats.allocated", or "stats.bins.<i>.count" for a family
    type: str            # "bool", "size", "string" or "command"
    unit: str            # "bytes", "count", "ms", "" ...
    writable: bool       # options that can be written, and commands
    description: str
    env: Optional[str]   # environment variable read at start-up (options), else None
    index_count: int     # for "<i>" families: indices 0 .. index_count-1; else 0


def _text(p: object) -> str:
    return "" if p == NULL else ffi.string(p).decode("utf-8", "replace")


_registry: Optional[List[Key]] = None
_patterns: Dict[str, "re.Pattern[str]"] = {}


def keys() -> List[Key]:
    """Every key of the registry, in its order (apex_ctl_count / apex_ctl_info)."""
    global _registry
    if _registry is None:
        out = []
        info = ffi.new("apex_ctl_info_t *")
        for i in range(lib.apex_ctl_count()):
            check(lib.apex_ctl_info(i, info, ffi.sizeof("apex_ctl_info_t")), f"ctl key #{i}")
            env = _text(info.env) or None
            out.append(Key(_text(info.name), _TYPES.get(info.type, str(info.type)),
                           _text(info.unit), bool(info.writable), _text(info.description),
                           env, int(info.index_count)))
        _registry = out
    return list(_registry)


def key(name: str) -> Optional[Key]:
    """The registry entry that `name` is, or is an instance of ("stats.bins.3.count" ->
    "stats.bins.<i>.count"); None for an unknown name (the index range is the library's to
    check)."""
    for k in keys():
        if k.name == name:
            return k
        if "<i>" in k.name:
            pat = _patterns.get(k.name)
            if pat is None:
                pat = re.compile(re.escape(k.name).replace(re.escape("<i>"), r"\d+") + r"\Z")
                _patterns[k.name] = pat
            if pat.match(name):
                return k
    return None


def _lookup(name: str) -> Key:
    if not isinstance(name, str):
        raise TypeError(f"apexalloc: a ctl key is a str, not {type(name).__name__}")
    k = key(name)
    if k is None:
        # Let the library say so (ENOENT), so the mapping is the library's own.
        check(lib.apex_ctl(name.encode(), NULL, NULL, NULL, 0), f"ctl key {name!r}")
        raise KeyError(f"apexalloc: ctl key {name!r}: not in the registry")
    return k


# String values written stay alive: the library keeps the pointer.
_kept_strings: Dict[str, object] = {}


def _new_value(k: Key, name: str, value: Value) -> object:
    if k.type == "bool":
        if not isinstance(value, int):
            raise TypeError(f"apexalloc: ctl key {name!r} is a bool: got {type(value).__name__}")
        if not -2**31 <= value < 2**31:
            _out_of_range(name, value)
        return ffi.new("int *", int(value))      # 0 or 1; the library refuses others (EINVAL)
    if k.type == "size":
        if not isinstance(value, int):
            raise TypeError(f"apexalloc: ctl key {name!r} is a size: got {type(value).__name__}")
        if not 0 <= value < 2**64:
            _out_of_range(name, value)
        return ffi.new("size_t *", value)
    if not isinstance(value, str):
        raise TypeError(f"apexalloc: ctl key {name!r} is a string: got {type(value).__name__}")
    text = ffi.new("char[]", value.encode())
    _kept_strings[name] = text
    return ffi.new("char **", text)


def _out_of_range(name: str, value: int) -> NoReturn:
    raise ValueError(f"apexalloc: ctl key {name!r}: {value} is out of range")


def _value(k: Key, p: Any) -> Value:
    if k.type == "bool":
        return bool(p[0])
    if k.type == "size":
        return int(p[0])
    return _text(p[0])


def ctl(name: str, *value: Value) -> Value:
    """Reads the key `name` (ctl(name)), or writes it (ctl(name, value)) and returns the value it
    had before. Values are bool, int or str, as the registry types the key.

    Errors: an unknown key raises KeyError, a write to a read-only key PermissionError, a bad
    value ValueError (or TypeError for a value of the wrong type or a command key: use run())."""
    if len(value) > 1:
        raise TypeError("apexalloc.ctl(name[, value]) takes at most one value")
    k = _lookup(name)
    if k.type == "command":
        raise TypeError(f"apexalloc: ctl key {name!r} is a command: use apexalloc.run({name!r})")
    ctype = _CTYPES[k.type]
    old = ffi.new(ctype + " *")
    oldlen = ffi.new("size_t *", ffi.sizeof(ctype))
    if value:
        new = _new_value(k, name, value[0])
        code = lib.apex_ctl(name.encode(), old, oldlen, new, ffi.sizeof(ctype))
    else:
        code = lib.apex_ctl(name.encode(), old, oldlen, NULL, 0)
    check(code, f"ctl key {name!r}")
    return _value(k, old)


def run(name: str) -> None:
    """Runs the command key `name` (e.g. "heap.collect", "stats.reset"). An unknown key raises
    KeyError; a key that is not a command, TypeError."""
    k = _lookup(name)
    if k.type != "command":
        raise TypeError(f"apexalloc: ctl key {name!r} is not a command ({k.type}): use ctl()")
    check(lib.apex_ctl(name.encode(), NULL, NULL, NULL, 0), f"ctl key {name!r}")


__all__ = ["Key", "keys", "key", "ctl", "run"]
