#!/usr/bin/env bash
# Run on the CPU machine before a GPU-host run: unpacks Debian's header-only/static
# packages that the GPU host lacks (nlohmann-json, GoogleTest) into .deps/ (git-ignored),
# which the device call carries. scripts/gpu-build.sh uses them only where the host has none.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .deps/debs
( cd .deps/debs && apt-get download nlohmann-json3-dev libgtest-dev >/dev/null )
for d in .deps/debs/*.deb; do dpkg -x "$d" .deps; done
rm -rf .deps/debs
du -sh .deps
