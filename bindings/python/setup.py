"""setup.py — only what pyproject.toml cannot say: the cffi extension (build_ffi.py) and the
version, read from include/apexalloc.h (the vendored copy in an sdist)."""
import re
import sys
from pathlib import Path

from setuptools import setup

sys.path.insert(0, str(Path(__file__).resolve().parent))
import build_ffi  # noqa: E402


def header_version() -> str:
    # source_root() also refreshes _vendor/ from the repository, before the sdist lists it.
    text = (build_ffi.source_root() / "include" / "apexalloc.h").read_text()
    parts = [re.search(rf"APEX_VERSION_{k}\s*=\s*(\d+)", text).group(1)
             for k in ("MAJOR", "MINOR", "PATCH")]
    return ".".join(parts)


setup(version=header_version(), cffi_modules=["build_ffi.py:make_ffibuilder"])
