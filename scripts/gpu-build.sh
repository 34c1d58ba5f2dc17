#!/usr/bin/env bash
# Configures and builds xattn on a GPU host against the CUDA LibTorch of its python3
# (torch.utils.cmake_prefix_path), for sm_90a, with video I/O off when FFmpeg/OpenCV
# development files are absent; prints `xattn info` of the result.
# Environment: BUILD_DIR (build-gpu), JOBS (nproc), XATTN_CUDA_ARCHS (90a), CMAKE_ARGS.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-gpu}
TORCH_PREFIX=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
extra=()
if ! ls /usr/share/cmake*/nlohmann_json /usr/lib/*/cmake/nlohmann_json >/dev/null 2>&1 && [ -d .deps/usr/share/cmake/nlohmann_json ]; then
  extra+=("-Dnlohmann_json_DIR=$PWD/.deps/usr/share/cmake/nlohmann_json")
fi
if ! ls /usr/lib/*/cmake/GTest >/dev/null 2>&1 && [ -d .deps/usr/lib/x86_64-linux-gnu/cmake/GTest ]; then
  extra+=("-DGTest_DIR=$PWD/.deps/usr/lib/x86_64-linux-gnu/cmake/GTest")
fi
start=$(date +%s)
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" \
  -DXATTN_CUDA=ON -DXATTN_CUDA_ARCHS="${XATTN_CUDA_ARCHS:-90a}" "${extra[@]}" ${CMAKE_ARGS:-}
cmake --build "$BUILD_DIR" -j "${JOBS:-$(nproc)}"
echo "gpu-build: configure + build took $(( $(date +%s) - start )) s"
"$BUILD_DIR/bin/xattn" info
