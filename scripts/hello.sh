#!/usr/bin/env bash
# From a fresh Debian 12, as root, at the top of the clone: install what's needed, build factory,
# build the hello image. The last line printed is `hello:latest sha256:<manifest digest>`.
#
#   bash scripts/hello.sh
#
# It is the README's first command spelled out:
#   bash scripts/setup.sh && cmake -S . -B build -G Ninja && ninja -C build factory &&
#   ./build/factory build recipes/hello.toml
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -G Ninja >/dev/null
ninja -C build factory
./build/factory build recipes/hello.toml
