#!/bin/sh
# CTest fixture of the python label: a venv in the build directory with the package installed
# from bindings/python by pip, as a user installs it (PEP 517, isolated build).
#   ctest_venv.sh PYTHON VENV_DIR PACKAGE_DIR
set -eu
python=$1 venv=$2 src=$3
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip="$venv/bin/python -m pip --disable-pip-version-check"
$pip install -q pytest build cffi numpy
$pip install -q --force-reinstall --no-deps "$src"
"$venv/bin/python" -c "import apexalloc; print('apexalloc', apexalloc.__version__, 'in', '$venv')"
