// `xattn bench scoring`: fused antidiagonal scoring + block selection on the GPU against cuDNN
// dense attention (LibTorch SDPA with only the cuDNN backend enabled), same inputs, same process.
#pragma once

#include <string>
#include <vector>

#include "core/progress.h"
#include "eval/report.h"

namespace xattn::eval {

struct ScoringBenchConfig {
  std::vector<std::string> cases = {"causal-8k", "causal-16k", "causal-32k", "causal-64k", "causal-128k",
                                    "video-720p"};
  std::vector<int> strides = {8, 16};
  double threshold = 0.9;
  int warmup = 2;
  int reps = 5;
  bool check = true;  // match rate against the ATen reference (slow at 128K)
  // NAME=VALUE settings (e.g. XATTN_SCORING_SPLIT=4): each stride's scoring and selection also run
  // with that environment variable set around their calls, in the same interleaved rounds.
  std::vector<std::string> ab;
};

// Case names: eval/bench_cases.h.
Table run_scoring_bench(const ScoringBenchConfig& cfg, const ProgressCallback& progress = {});

}  // namespace xattn::eval
