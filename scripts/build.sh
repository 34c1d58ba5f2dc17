#!/usr/bin/env bash
# Configures and builds xattn with Ninja. Environment:
#   BUILD_DIR (default build), BUILD_TYPE (Release), JOBS (2), CMAKE_ARGS (extra flags)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}" ${CMAKE_ARGS:-}
cmake --build "$BUILD_DIR" -j "${JOBS:-2}"
