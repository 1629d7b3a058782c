#!/bin/sh
# CTest: `python -m build` makes an sdist and a wheel (built from the sdist, away from the
# repository); the sdist carries the C sources; each installs into a fresh venv and works.
#   ctest_sdist.sh TEST_VENV PACKAGE_DIR WORK_DIR
set -eu
venv=$1 src=$2 work=$3
rm -rf "$work"
mkdir -p "$work"
(cd "$src" && "$venv/bin/python" -m build -q --outdir "$work/dist" . >"$work/build.log" 2>&1) \
  || { tail -40 "$work/build.log"; exit 1; }
sdist=$(ls "$work"/dist/apexalloc-*.tar.gz)
wheel=$(ls "$work"/dist/apexalloc-*.whl)
echo "built $sdist and $wheel"

# The sdist carries what the extension compiles: every file of core/sources.txt, the headers.
tar -xzf "$sdist" -C "$work"
root=$(ls -d "$work"/apexalloc-*/)
for f in $(cat "$root/_vendor/core/sources.txt") internal.h; do
  [ -f "$root/_vendor/core/$f" ] || { echo "sdist lacks _vendor/core/$f"; exit 1; }
done
for f in _vendor/include/apexalloc.h csrc/pymem_glue.c csrc/pymem_glue.h build_ffi.py; do
  [ -f "$root/$f" ] || { echo "sdist lacks $f"; exit 1; }
done

smoke='import apexalloc
with apexalloc.Heap(limit=1 << 20) as h:
    v = h.alloc(100); v[:2] = b"ok"; assert bytes(v[:2]) == b"ok"
apexalloc.install(); x = [str(i) for i in range(10000)]; apexalloc.uninstall()
assert apexalloc.domain_stats()["obj"]["mallocs"] >= 10000
print("works:", apexalloc.__file__)'

# From the sdist (compiled here, from the vendored sources only), into a fresh venv.
"$venv/bin/python" -m venv "$work/venv-sdist"
"$work/venv-sdist/bin/python" -m pip --disable-pip-version-check install -q "$sdist" pytest
(cd "$work" && "$work/venv-sdist/bin/python" -c "$smoke")
# The package's own tests, from the unpacked sdist (its vendored header is the reference).
(cd "$root" && env -u APEXALLOC_HEADER "$work/venv-sdist/bin/python" -m pytest -q -p no:cacheprovider \
   tests/test_drift.py tests/test_api.py tests/test_heap.py)

# The wheel, into another fresh venv: no compiler needed.
"$venv/bin/python" -m venv "$work/venv-wheel"
"$work/venv-wheel/bin/python" -m pip --disable-pip-version-check install -q "$wheel"
(cd "$work" && "$work/venv-wheel/bin/python" -c "$smoke")
echo "sdist and wheel: 2 passed, 0 failed"
