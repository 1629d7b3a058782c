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

# ---- Python packages for the Python binding's build and tests -------------------------------------
py_need=()
for mod in cffi pytest setuptools wheel build; do
  python3 -c "import $mod" >/dev/null 2>&1 || py_need+=("$mod")
done
if [ ${#py_need[@]} -gt 0 ]; then
  echo "setup: installing Python packages: ${py_need[*]}"
  python3 -m pip install -q "${py_need[@]}"
fi
# ---- Rust: cargo fetches the crates itself (bindings/rust/Cargo.lock) -------------------------------
# Debian 12's rustc is too old (the crates need 1.84): without a recent cargo the label `rust` is
# simply not registered by CMake, which says so.
if ! have_cmd cargo && [ ! -x "$HOME/.cargo/bin/cargo" ]; then
  echo "setup: cargo not found: install Rust >= 1.84 (rustup) to run the Rust binding's tests"
fi
echo "setup: all build and test dependencies present"
