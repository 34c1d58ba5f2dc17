// Density study: how many blocks XAttention keeps on a synthetic workload, per head kind,
// at any size and on any device (CPU, or a GPU through ATen). No dense attention is run,
// so it scales to 100K+ tokens on a GPU; used to tune the workloads to published densities.
#pragma once

#include <string>

#include "core/attention/synthetic.h"
#include "core/config/config.h"
#include "core/progress.h"
#include "eval/report.h"

namespace xattn::eval {

struct DensityBench {
  std::string workload = "video";  // video | llm
  int stride = 8;
  int block_size = 128;
  double threshold = 0.9;
  std::string device = "auto";     // auto | cpu | cuda[:N]
  std::string dtype = "auto";      // auto (bf16 on GPU, fp32 on CPU) | fp32 | bf16 | fp16
  attention::synthetic::VideoConfig video;
  attention::synthetic::LlmConfig llm;

  template <class V>
  void fields(V& v) {
    namespace c = xattn::config;
    v.field("workload", workload, "video or llm", c::one_of<std::string>({"video", "llm"}));
    v.field("stride", stride, "antidiagonal stride", c::one_of<int>({4, 8, 16, 32, 64}));
    v.field("block_size", block_size, "block size", c::one_of<int>({64, 128}));
    v.field("threshold", threshold, "XAttention threshold tau", c::range(0.0, 1.0));
    v.field("device", device, "auto, cpu or cuda[:N]");
    v.field("dtype", dtype, "auto, fp32, bf16 or fp16");
    v.field("video", video, "video workload (used when workload = video)");
    v.field("llm", llm, "LLM workload (used when workload = llm)");
  }
};

// Rows: workload, tokens, head kind, heads, density; the last row per run is "all".
Table run_density(const DensityBench& cfg, const ProgressCallback& progress = {});

}  // namespace xattn::eval
