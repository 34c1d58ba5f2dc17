#!/usr/bin/env bash
# The README's main command: installs dependencies, builds, and renders a short MP4 from a prompt
# with the embedded tiny HunyuanVideo-architecture model (random weights) on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
out_dir=${OUT_DIR:-out}
mkdir -p "$out_dir"
"${BUILD_DIR:-build}/bin/xattn" generate-video \
  --prompt "A red kite dances over a windy beach at sunset, cinematic." \
  --out "$out_dir/xattn-tiny.mp4"
