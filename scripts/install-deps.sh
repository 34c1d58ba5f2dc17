#!/usr/bin/env bash
# Installs every build, test and runtime dependency of xattn from Debian's packages.
# Idempotent: packages already present are not reinstalled. Needs root (or sudo).
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  libtorch-dev            # LibTorch 1.13 (CPU)
  libopenblas0-pthread    # fast BLAS for LibTorch's CPU matmul (the default netlib BLAS is ~20x slower)
  libyaml-cpp-dev         # configs
  nlohmann-json3-dev      # JSON (safetensors headers, --json output)
  libgtest-dev libgmock-dev
  libavformat-dev libavcodec-dev libswscale-dev libavutil-dev   # video I/O
  ffmpeg                  # the CLI, for test fixtures and checking MP4s
  libopencv-core-dev libopencv-imgproc-dev                      # transforms
  libpcre2-dev            # Unicode regex for tokenizers
  libutf8proc-dev         # NFC normalisation for tokenizers
  python3-pil             # tests: our resize checked against Pillow's
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: run as root (missing: ${missing[*]})" >&2; exit 1; }
  SUDO="sudo"
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps: done"
