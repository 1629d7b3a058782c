"""Shared helpers: running Python code in a child interpreter (install() changes the whole
process, so those tests run in subprocesses), and where the repository's files are."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Dict, List, Optional

import pytest

TESTS = Path(__file__).resolve().parent
PACKAGE_ROOT = TESTS.parent                     # bindings/python (or an unpacked sdist)


def find_header() -> Path:
    """include/apexalloc.h of the repository (APEXALLOC_HEADER overrides), else the copy an
    sdist carries."""
    env = os.environ.get("APEXALLOC_HEADER")
    candidates = [Path(env)] if env else []
    candidates += [PACKAGE_ROOT.parent.parent / "include" / "apexalloc.h",
                   PACKAGE_ROOT / "_vendor" / "include" / "apexalloc.h"]
    for c in candidates:
        if c.is_file():
            return c
    raise FileNotFoundError(f"apexalloc.h not found in {candidates}")


def find_preload_lib() -> Path:
    """build/core/libapexalloc.so (APEXALLOC_PRELOAD_LIB overrides, as CTest sets it)."""
    env = os.environ.get("APEXALLOC_PRELOAD_LIB")
    candidates = [Path(env)] if env else []
    candidates.append(PACKAGE_ROOT.parent.parent / "build" / "core" / "libapexalloc.so")
    for c in candidates:
        if c.is_file():
            return c
    raise FileNotFoundError(f"libapexalloc.so not found in {candidates}: build the repository "
                            "first (cmake --build --preset default)")


def run_python(code: str, args: Optional[List[str]] = None, env: Optional[Dict[str, str]] = None,
               timeout: float = 120, check: bool = True,
               cwd: Optional[str] = None) -> subprocess.CompletedProcess:
    """Runs `code` (dedented) in a fresh interpreter of this venv; fails the test on a non-zero
    exit when check is set, showing its output."""
    full_env = dict(os.environ)
    full_env.pop("PYTHONMALLOC", None)
    if env:
        full_env.update(env)
    cmd = [sys.executable] + (args if args is not None else ["-c", textwrap.dedent(code)])
    proc = subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=timeout,
                          cwd=cwd)
    if check and proc.returncode != 0:
        pytest.fail(f"child exited {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n"
                    f"{proc.stderr}", pytrace=False)
    return proc


@pytest.fixture
def header_path() -> Path:
    return find_header()
