#!/usr/bin/env bash
# Installs the build tree into a scratch prefix, then builds a consumer three ways:
# find_package (shared and embeddable targets) and pkg-config. Usage: run.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1; here=$2
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >/dev/null
cmake -S "$here" -B "$work/consumer" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/consumer" >/dev/null
LD_LIBRARY_PATH="$work/prefix/lib" "$work/consumer/consumer"
"$work/consumer/consumer_embed"
libdir=$(ls -d "$work"/prefix/lib*/pkgconfig | head -1)
export PKG_CONFIG_PATH="$libdir"
cc -o "$work/consumer_pc" "$here/consumer.c" $(pkg-config --cflags --libs apexalloc)
LD_LIBRARY_PATH="$work/prefix/lib" "$work/consumer_pc"
echo "install_consumer: find_package (shared, embed) and pkg-config all work"
