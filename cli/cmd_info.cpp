#include <ATen/Parallel.h>

#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/build_info.h"
#include "core/device.h"

namespace xattn::cli {

int run_info(const std::vector<std::string>& args) {
  bool json = false;
  ArgParser p("xattn info [--json]",
              "Show the xattn version, the LibTorch it was built with, the CUDA devices it can see and the\n"
              "features compiled into this build.");
  p.toggle("--json", "print one JSON object instead of text", &json);
  if (p.parse(args)) {
    std::cout << p.help();
    return 0;
  }
  const BuildInfo& b = build_info();
  const std::vector<GpuInfo> gpus = cuda_devices();
  const int visible = cuda_device_count();
  if (json) {
    nlohmann::ordered_json j;
    j["version"] = b.version;
    j["git"] = b.git_sha;
    j["build_type"] = b.build_type;
    j["compiler"] = b.compiler;
    j["libtorch"] = {{"version", b.torch_version}, {"cuda", b.torch_cuda}};
    j["cuda_kernels"] = {{"compiled", b.kernels_compiled}, {"archs", b.cuda_archs}, {"nvcc", b.cuda_compiler}};
    j["cuda_dispatch"] = b.cuda_dispatch;
    j["video"] = b.video;
    j["cpu_threads"] = at::get_num_threads();
    j["features"] = b.features();
    nlohmann::ordered_json devs = nlohmann::ordered_json::array();
    for (const GpuInfo& g : gpus)
      devs.push_back({{"index", g.index},
                      {"name", g.name},
                      {"compute_capability", std::to_string(g.cc_major) + "." + std::to_string(g.cc_minor)},
                      {"multiprocessors", g.multiprocessors},
                      {"memory_bytes", g.memory_bytes}});
    j["cuda_devices"] = devs;
    j["cuda_devices_visible"] = visible;
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  auto row = [](const std::string& k, const std::string& v) { std::cout << std::left << std::setw(15) << k << v << "\n"; };
  row("xattn", b.version + " (git " + b.git_sha + ", " + b.build_type + ", " + b.compiler + ")");
  row("LibTorch", b.torch_version + (b.torch_cuda ? " (CUDA)" : " (CPU only)"));
  row("CUDA kernels", b.kernels_compiled ? "compiled for " + b.cuda_archs + " (nvcc " + b.cuda_compiler + ")"
                                         : "not compiled");
  row("GPU dispatch", b.cuda_dispatch ? "on" : "off (CPU reference only)");
  row("video I/O", b.video ? "on (FFmpeg, OpenCV)" : "not in this build");
  row("CPU threads", std::to_string(at::get_num_threads()));
  if (gpus.empty()) {
    row("GPUs", visible > 0 ? std::to_string(visible) + " visible (details need a CUDA build)" : "none");
  } else {
    for (const GpuInfo& g : gpus) {
      std::ostringstream os;
      os << g.index << ": " << g.name << ", sm_" << g.cc_major << g.cc_minor << ", " << g.multiprocessors
         << " SMs, " << std::fixed << std::setprecision(1) << static_cast<double>(g.memory_bytes) / (1ull << 30)
         << " GiB";
      row(g.index == 0 ? "GPUs" : "", os.str());
    }
  }
  std::string f;
  for (const std::string& s : b.features()) f += (f.empty() ? "" : ", ") + s;
  row("features", f);
  return 0;
}

}  // namespace xattn::cli
