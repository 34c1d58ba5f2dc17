// The proxy study: how well do cheap block-score estimators find the attention mass?
// On synthetic workloads, at equal density (each method keeps, per row, as many blocks as
// XAttention's threshold selection kept), compare antidiagonal scoring with diagonal,
// mean-pooled and random scores and with the exact block mass (the oracle): mass recall
// and relative L2 error of the output against dense attention.
#pragma once

#include <cstdint>
#include <string>

#include "core/progress.h"
#include "eval/report.h"

namespace xattn::eval {

struct ProxyConfig {
  std::string size = "small";  // small (~2-4K tokens, CPU seconds) or medium (~8-12K)
  int stride = 8;
  double threshold = 0.9;
  uint64_t seed = 0;
};

struct ProxyResult {
  Table estimators;  // workload, method, density, mass recall, relative L2 error
  Table head_kinds;  // XAttention's own selection: density and recall per head kind
};
ProxyResult run_proxy(const ProxyConfig& cfg, const ProgressCallback& progress = {});

}  // namespace xattn::eval
