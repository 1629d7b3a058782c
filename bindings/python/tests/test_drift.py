"""The header and the compiled module agree: every function, constant, struct field and typedef of
include/apexalloc.h (and of the glue header) is in the module, and nothing of the module's apex_*
is missing from the header. Fails when the header changes and the build does not follow."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import cffi
import pytest

from apexalloc import ffi, lib

from conftest import PACKAGE_ROOT

GLUE_HEADER = PACKAGE_ROOT / "csrc" / "pymem_glue.h"


def _code(path: Path) -> str:
    """The header without comments (an independent reading: not build_ffi's)."""
    return re.sub(r"/\*.*?\*/|//[^\n]*", " ", path.read_text(), flags=re.S)


def _functions(code: str, prefix: str) -> set:
    return set(re.findall(rf"\b({prefix}\w+)\s*\(", code))


def _constants(code: str, prefix: str) -> dict:
    out = {}
    for body in re.findall(r"\benum\s*\w*\s*\{(.*?)\}", code, flags=re.S):
        for item in body.split(","):
            name, _, value = item.partition("=")
            name = name.strip()
            if name.startswith(prefix):
                value = value.strip()
                out[name] = int(value, 0) if re.fullmatch(r"-?(0x)?[0-9a-fA-F]+", value) else None
    return out


def _structs(code: str) -> dict:
    out = {}
    for body, name in re.findall(r"typedef\s+struct\s+\w*\s*\{(.*?)\}\s*(\w+)\s*;", code, re.S):
        fields = []
        for decl in body.split(";"):
            decl = decl.strip()
            if decl:
                fields.append(re.search(r"(\w+)\s*(\[[^\]]*\])?\s*$", decl).group(1))
        out[name] = fields
    return out


@pytest.mark.parametrize("which", ["public", "glue"])
def test_every_function_of_the_header_is_in_the_module(header_path, which):
    path, prefix = (header_path, "apex_") if which == "public" else (GLUE_HEADER, "apexpy_")
    declared = _functions(_code(path), prefix)
    assert len(declared) > (30 if which == "public" else 5)
    missing = sorted(n for n in declared if not callable(getattr(lib, n, None)))
    assert missing == [], f"in {path.name} but not in the module: {missing}"


def test_no_apex_function_of_the_module_is_missing_from_the_header(header_path):
    declared = _functions(_code(header_path), "apex_")
    extra = sorted(n for n in dir(lib) if n.startswith("apex_") and n not in declared)
    assert extra == []


@pytest.mark.parametrize("which", ["public", "glue"])
def test_every_constant_of_the_header_has_its_value(header_path, which):
    path, prefix = (header_path, "APEX_") if which == "public" else (GLUE_HEADER, "APEXPY_")
    constants = _constants(_code(path), prefix)
    assert constants
    for name, value in constants.items():
        assert hasattr(lib, name), name
        if value is not None:
            assert getattr(lib, name) == value, name


@pytest.mark.parametrize("which", ["public", "glue"])
def test_every_struct_has_the_headers_fields_in_order(header_path, which):
    path = header_path if which == "public" else GLUE_HEADER
    structs = _structs(_code(path))
    assert structs
    for name, fields in structs.items():
        assert [f for f, _ in ffi.typeof(name).fields] == fields, name


def test_every_typedef_is_known(header_path):
    code = _code(header_path)
    names = re.findall(r"typedef\b[^;]*?\(\s*\*\s*(\w+)\s*\)", code)          # function pointers
    names += re.findall(r"typedef\s+struct\s+\w+\s+(\w+)\s*;", code)          # opaque structs
    assert "apex_write_fn" in names and "apex_heap_t" in names
    for name in names:
        ffi.typeof(name + " *")


def _build_ffi():
    spec = importlib.util.spec_from_file_location("build_ffi", PACKAGE_ROOT / "build_ffi.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_generator_reads_what_cffi_cannot():
    # Comments, preprocessor lines, C++ guards, computed enum values and a named enum: what a
    # future header may hold. cffi's own parser must accept the result.
    header = """
    #ifndef X_H
    #define X_H
    #include <stddef.h>
    #ifdef __cplusplus
    extern "C" {
    #endif
    /* a comment with a ; and a { */
    enum { A = 1 << 3, B = A | 4, C = (int)sizeof(void *) };   // computed
    typedef enum apex_kind_e { K0, K1 = 2 * K0 + 5 } apex_kind_t;
    #define APEX_SOMETHING(x) ((x) + 1)
    int apex_new_call(apex_kind_t k, size_t n);
    #ifdef __cplusplus
    }
    #endif
    #endif
    """
    cdef = _build_ffi().cdef_from_header(header)
    assert "extern" not in cdef and "#include" not in cdef and "comment" not in cdef
    f = cffi.FFI()
    f.cdef(cdef)                          # parses (values are left to the C compiler)
    assert "apex_new_call" in cdef and "#define A ..." in cdef
