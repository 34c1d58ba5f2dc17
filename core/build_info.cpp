#include "core/build_info.h"

#include <torch/version.h>

namespace xattn {

#ifndef XATTN_VERSION_STRING
#error "build_info.cpp needs the XATTN_* definitions from core/CMakeLists.txt"
#endif

const BuildInfo& build_info() {
  static const BuildInfo info = [] {
    BuildInfo b;
    b.version = XATTN_VERSION_STRING;
    b.git_sha = XATTN_GIT_SHA;
    b.build_type = XATTN_BUILD_TYPE;
    b.compiler = XATTN_COMPILER;
    b.torch_version = TORCH_VERSION;
    b.torch_cuda = XATTN_TORCH_CUDA;
    b.kernels_compiled = XATTN_KERNELS_COMPILED;
    b.cuda_dispatch = XATTN_CUDA_DISPATCH;
    b.cuda_archs = XATTN_CUDA_ARCHS_STRING;
    b.cuda_compiler = XATTN_CUDA_COMPILER_VERSION;
    b.video = XATTN_VIDEO_COMPILED;
    return b;
  }();
  return info;
}

std::vector<std::string> BuildInfo::features() const {
  std::vector<std::string> f;
  f.push_back("cpu-reference");
  if (kernels_compiled) f.push_back("cuda-kernels(" + cuda_archs + ")");
  if (cuda_dispatch) f.push_back("cuda-dispatch");
  if (video) f.push_back("video");
  return f;
}

}  // namespace xattn
