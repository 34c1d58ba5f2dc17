#!/usr/bin/env bash
# The README's test command: installs dependencies, builds, runs the CPU test suite
# (label `unit`, which includes the AddressSanitizer/UBSan build of the config and
# safetensors code and the installed-package consumer build).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
ctest --test-dir "${BUILD_DIR:-build}" -L unit --output-on-failure -j "${JOBS:-2}"
