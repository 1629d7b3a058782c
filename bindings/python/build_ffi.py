"""build_ffi.py — the cffi (API mode) builder of the extension module ``apexalloc._ffi``.

Owns: where the C sources come from, the cffi declarations (made mechanically from
include/apexalloc.h and csrc/pymem_glue.h at build time) and the compiler flags of the core's
embeddable form. Must never: hold a hand-written copy of a declaration of the public header, or a
hard-coded list of the core's source files (core/sources.txt is the one list).

Where the sources come from: the extension always compiles _vendor/ (gitignored), a copy of
the repository's core/ and include/apexalloc.h. Inside the repository (../../core exists and no
PKG-INFO is beside this file) the copy is made afresh on every build, so it never goes stale; an
sdist carries the copy and builds with no repository around it.
"""
from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
VENDOR = HERE / "_vendor"
GLUE_HEADER = HERE / "csrc" / "pymem_glue.h"
GLUE_SOURCE = HERE / "csrc" / "pymem_glue.c"

# The flags of the core's embeddable form (core/CMakeLists.txt, target apexalloc_embed, release
# build): no malloc override, hidden apex_* symbols, dlopen-safe TLS.
EMBED_CFLAGS = [
    "-std=c11", "-O2", "-g", "-pthread", "-fPIC", "-fvisibility=hidden",
    "-fno-semantic-interposition", "-fno-builtin-malloc", "-fno-builtin-free",
    "-ftls-model=global-dynamic",
]
EMBED_MACROS = [("APEX_EMBED", "1"), ("APEX_EMBED_TLS", "1")]
# PyMem_SetAllocator is not in CPython's limited API, which cffi would otherwise select.
GLUE_MACROS = [("_CFFI_NO_LIMITED_API", None)]


def _is_repo_root(root: Path) -> bool:
    return ((root / "include" / "apexalloc.h").is_file()
            and (root / "core" / "sources.txt").is_file())


def source_root() -> Path:
    """The directory holding include/ and core/ for this build (see the module docstring)."""
    repo = HERE.parent.parent
    in_sdist = (HERE / "PKG-INFO").is_file()
    if not in_sdist and _is_repo_root(repo):
        vendor_copy(repo)
    if _is_repo_root(VENDOR):
        return VENDOR
    sys.exit("apexalloc: cannot find the C sources: neither the repository (../../core) "
             "nor a vendored copy (_vendor/) is here")


def vendor_copy(repo: Path) -> None:
    """Copies what the extension compiles (the core, the public header) into _vendor/."""
    if VENDOR.exists():
        shutil.rmtree(VENDOR)
    (VENDOR / "core").mkdir(parents=True)
    (VENDOR / "include").mkdir()
    for f in sorted((repo / "core").iterdir()):
        if f.suffix in (".c", ".h") or f.name == "sources.txt":
            shutil.copy2(f, VENDOR / "core" / f.name)
    shutil.copy2(repo / "include" / "apexalloc.h", VENDOR / "include" / "apexalloc.h")


def _setup_path(p: Path) -> str:
    """setuptools wants source paths relative to setup.py's directory (so that an sdist lists them
    and object files stay under build/)."""
    return os.path.relpath(p, HERE) if Path.cwd().resolve() == HERE else str(p)


def core_sources(root: Path) -> list[str]:
    lines = (root / "core" / "sources.txt").read_text().splitlines()
    names = [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
    return [_setup_path(root / "core" / n) for n in names]


# ---- cdef generation ---------------------------------------------------------------------------
_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)
_ENUM = re.compile(r"\benum\s*(\w*)\s*\{(.*?)\}\s*(\w*)\s*;", re.S)


def _drop_preprocessor(text: str) -> str:
    """Removes preprocessor lines and whatever sits under #ifdef __cplusplus (extern "C" braces)."""
    out, skip = [], 0
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("#"):
            if skip:
                if re.match(r"#\s*if", s):
                    skip += 1
                elif re.match(r"#\s*endif", s):
                    skip -= 1
            elif re.match(r"#\s*if(def)?\s+(defined\s*\(?\s*)?__cplusplus", s):
                skip = 1
            continue
        if not skip:
            out.append(line)
    return "\n".join(out)


def _enum_names(body: str) -> list[str]:
    names = []
    for item in body.split(","):
        item = item.strip()
        if item:
            names.append(item.split("=")[0].strip())
    return names


def _rewrite_enums(text: str) -> str:
    """Enumerators become `#define NAME ...` (anonymous enums) or a partial enum `{A, B, ...}`:
    cffi then takes every value from the C compiler, whatever expression the header uses."""
    def repl(m: re.Match) -> str:
        tag, body, typedef_name = m.group(1), m.group(2), m.group(3)
        names = _enum_names(body)
        if not tag and not typedef_name:
            return "\n".join(f"#define {n} ..." for n in names)
        decl = f"enum {tag} {{ {', '.join(names)}, ... }}" if tag else \
            f"enum {{ {', '.join(names)}, ... }}"
        return f"typedef {decl} {typedef_name};" if typedef_name else decl + ";"
    return _ENUM.sub(repl, text)


def cdef_from_header(text: str) -> str:
    """The cffi declarations of a plain C11 header: comments, preprocessor lines and C++ guards
    dropped, enum values left to the compiler."""
    text = _COMMENT.sub(" ", text)
    text = _drop_preprocessor(text)
    text = _rewrite_enums(text)
    return "\n".join(ln.rstrip() for ln in text.splitlines() if ln.strip()) + "\n"


def make_ffibuilder() -> FFI:
    root = source_root()
    header = (root / "include" / "apexalloc.h").read_text()
    ffi = FFI()
    ffi.cdef(cdef_from_header(header))
    ffi.cdef(cdef_from_header(GLUE_HEADER.read_text()))
    # The write callback of apex_stats_print / apex_heap_map: a Python function (def_extern).
    ffi.cdef('extern "Python" void apexpy_write(void *opaque, const char *text, size_t len);')
    preamble = ('#include "apexalloc.h"\n#include "pymem_glue.h"\n'
                + GLUE_SOURCE.read_text())
    # Headers and the glue as dependencies: setuptools rebuilds when any of them changes.
    depends = sorted(str(p) for p in (root / "core").glob("*.h"))
    depends += [str(root / "include" / "apexalloc.h"), str(GLUE_HEADER), str(GLUE_SOURCE)]
    ffi.set_source(
        "apexalloc._ffi",
        preamble,
        sources=core_sources(root),
        depends=[_setup_path(Path(d)) for d in depends],
        include_dirs=[str(root / "include"), str(root / "core"), str(GLUE_HEADER.parent)],
        define_macros=EMBED_MACROS + GLUE_MACROS,
        py_limited_api=False,
        extra_compile_args=EMBED_CFLAGS,
        extra_link_args=["-pthread"],
    )
    return ffi


if __name__ == "__main__":
    # `python build_ffi.py --cdef` shows the generated declarations.
    if "--cdef" in sys.argv:
        print(cdef_from_header((source_root() / "include" / "apexalloc.h").read_text()))
    else:
        make_ffibuilder().compile(verbose=True)
