#!/usr/bin/env bash
# One idempotent setup step: installs what building ApexAlloc and running its whole test suite
# (C, Python, Rust, Lua) needs on a fresh Debian machine of the project's kind, and nothing when
# it is all there already. The README's test command runs it first; so does CI (.ci/run).
set -euo pipefail

# ---- Debian packages: each line is "command-or-dpkg-name package" ------------------------------
need=()
have_cmd() { command -v "$1" >/dev/null 2>&1; }
have_pkg() { dpkg -s "$1" >/dev/null 2>&1; }
want_cmd() { have_cmd "$1" || need+=("$2"); }
want_pkg() { have_pkg "$1" || need+=("$1"); }

want_cmd cmake    cmake
want_cmd ninja    ninja-build
want_cmd gcc      gcc
want_cmd valgrind valgrind
want_cmd clang    clang                 # the build label's clang -Werror build; libFuzzer
want_pkg libclang-rt-14-dev             # libFuzzer's runtime (fuzz label)
want_cmd spin     spin                  # model checking of the remote-free protocol
want_cmd python3  python3
want_cmd sqlite3  sqlite3               # real programs under LD_PRELOAD / APEX_SECURE=2
want_cmd git      git
want_cmd gzip     gzip
want_cmd awk      mawk
want_cmd ssh      openssh-client        # real programs under APEX_SECURE=2 (tests/hardened)
want_cmd curl     curl
want_cmd make     make
want_cmd lua5.4   lua5.4                # Lua binding: the stock interpreter its tests load the module into
want_pkg liblua5.4-dev                  # Lua binding: headers and library for apexlua and the module
want_cmd swig     swig                  # Lua binding: the raw layer is generated from the header
want_pkg libluajit-5.1-2                # Lua binding: the LuaJIT test (lua_luajit)
want_pkg libclang-dev                   # the Rust binding's bindgen drift test (libclang at run time)
[ -e "$(gcc -print-file-name=libtsan.so)" ]  || need+=(libtsan2)
[ -e "$(gcc -print-file-name=libubsan.so)" ] || need+=(libubsan1)

if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need[*]}"
  sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_ apt-get update -qq
  $sudo_ apt-get install -y -qq "${need[@]}" >/dev/null
fi

# ---- Python binding (label python): Python >= 3.9 with venv, its headers, CPython's test suite --
# The PyPI packages (cffi, setuptools, pytest, build) go into the tests' own venv in the build
# directory (bindings/python/tests/ctest_venv.sh), never into the system's Python.
py_need=()
py_has() { python3 -c "$1" >/dev/null 2>&1; }
py_minor=$(python3 -c 'import sys; print(sys.version_info[1])')
py_has 'import sys; assert sys.version_info >= (3, 9)' || { echo "setup: Python >= 3.9 needed"; exit 1; }
py_has 'import venv, ensurepip'                          || py_need+=("python3.$py_minor-venv")
py_has 'import sysconfig, os; assert os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h"))' \
                                                         || py_need+=("python3.$py_minor-dev")
py_has 'import test.libregrtest, test.test_dict'        || py_need+=("libpython3.$py_minor-testsuite")
if [ ${#py_need[@]} -gt 0 ]; then
  if [ "$(command -v python3)" != /usr/bin/python3 ]; then
    echo "setup: $(command -v python3) lacks ${py_need[*]} (not Debian's python3: install them for it)"
    exit 1
  fi
  echo "setup: installing Debian packages for Python: ${py_need[*]}"
  sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_ apt-get update -qq
  $sudo_ apt-get install -y -qq "${py_need[@]}" >/dev/null
fi
# ---- Rust: cargo fetches the crates itself (bindings/rust/Cargo.lock) -------------------------------
# Debian 12's rustc is too old (the crates need 1.84): without a recent cargo the label `rust`
# holds one failing test, rust_toolchain_missing, that says so.
if ! have_cmd cargo && [ ! -x "$HOME/.cargo/bin/cargo" ]; then
  echo "setup: cargo not found: install Rust >= 1.84 (rustup) to run the Rust binding's tests"
fi
echo "setup: all build and test dependencies present"
