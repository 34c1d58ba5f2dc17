// `xattn bench attention`: our block-sparse attention (dense mode = every block kept; sparse at
// top-ratio densities; the whole estimate + attend call) against LibTorch SDPA with the cuDNN
// and FlashAttention-2 backends, same inputs, same process.
#pragma once

#include <string>
#include <vector>

#include "core/progress.h"
#include "eval/report.h"

namespace xattn::eval {

struct AttentionBenchConfig {
  std::vector<std::string> cases = {"causal-32k", "causal-128k", "video-720p"};
  std::vector<double> densities = {0.10, 0.25, 0.35, 0.50};
  // NAME=VALUE settings (e.g. XATTN_ATTENTION_PINGPONG=0): each of our block-sparse modes also runs
  // with that environment variable set around its calls, in the same interleaved rounds, so a
  // kernel switch is compared with the default in one process.
  std::vector<std::string> ab;
  int stride = 8;  // for the full estimate + attend call
  int warmup = 2;
  int reps = 5;
};

Table run_attention_bench(const AttentionBenchConfig& cfg, const ProgressCallback& progress = {});

}  // namespace xattn::eval
