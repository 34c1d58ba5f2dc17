#!/usr/bin/env bash
# The README's main command: installs dependencies, builds, runs the main job.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
"${BUILD_DIR:-build}/bin/xattn" info
