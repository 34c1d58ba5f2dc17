// What this build of xattn contains: version, compiler, LibTorch and compiled features.
#pragma once

#include <string>
#include <vector>

namespace xattn {

struct BuildInfo {
  std::string version;     // "0.1.0"
  std::string git_sha;     // short hash or "unknown"
  std::string build_type;  // "Release", ...
  std::string compiler;    // "GNU 12.2.0"
  std::string torch_version;
  bool torch_cuda = false;       // LibTorch built with CUDA
  bool kernels_compiled = false; // CUDA kernels compiled into this build
  bool cuda_dispatch = false;    // GPU tensors go to our kernels
  std::string cuda_archs;        // "90a;80"
  std::string cuda_compiler;     // nvcc version
  bool video = false;            // FFmpeg/OpenCV video I/O compiled in
  std::vector<std::string> features() const;  // names of what is on, for --version/info
};

const BuildInfo& build_info();

}  // namespace xattn
