#!/usr/bin/env bash
# Checks the include rules of ../shared/ARCHITECTURE.md: no layer includes a higher one,
# kernels see no LibTorch/yaml-cpp/FFmpeg/OpenCV, yaml-cpp only in core/config/*.cpp,
# FFmpeg/OpenCV headers only in video/*.cpp. Prints every violation; exits 1 if any.
set -u
cd "${1:-$(dirname "$0")/..}"
bad=0
check() {  # dir, regex of forbidden includes, description
  local hits
  hits=$(grep -rnE "^[[:space:]]*#[[:space:]]*include[[:space:]]*[<\"]($2)" "$1" --include='*.h' --include='*.cpp' --include='*.cu' --include='*.cuh' 2>/dev/null)
  if [ -n "$hits" ]; then echo "layer violation ($3):"; echo "$hits"; bad=1; fi
}
check kernels 'torch/|ATen/|c10/|yaml-cpp/|libav|opencv2/|core/|video/|pipelines/|eval/|cli/' "kernels include only CUDA and kernels/"
check core 'video/|pipelines/|eval/|cli/|libav|opencv2/' "core is below video, pipelines, eval, cli"
check video 'pipelines/|eval/|cli/' "video is below pipelines, eval, cli"
check pipelines 'eval/|cli/|libav|opencv2/' "pipelines is below eval and cli; FFmpeg/OpenCV stay in video/*.cpp"
check eval 'cli/|libav|opencv2/' "eval is below cli; FFmpeg/OpenCV stay in video/*.cpp"
hits=$(grep -rlE '#[[:space:]]*include[[:space:]]*[<"]yaml-cpp/' core video pipelines eval cli kernels 2>/dev/null | grep -vE '^core/config/[^/]+\.cpp$')
[ -n "$hits" ] && { echo "yaml-cpp outside core/config/*.cpp:"; echo "$hits"; bad=1; }
hits=$(grep -rlE '#[[:space:]]*include[[:space:]]*[<"](libav|opencv2/)' video 2>/dev/null | grep -vE '^video/[^/]+\.cpp$')
[ -n "$hits" ] && { echo "FFmpeg/OpenCV in a video header:"; echo "$hits"; bad=1; }
[ $bad -eq 0 ] && echo "layers ok"
exit $bad
