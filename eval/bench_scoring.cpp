#include "eval/bench_scoring.h"

#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>

#include <algorithm>
#include <functional>
#include <vector>

#include "core/attention/cuda_dispatch.h"
#include "core/attention/xattention.h"
#include "core/error.h"
#include "eval/bench_cases.h"
#include "eval/gpu_timing.h"

namespace xattn::eval {

namespace att = xattn::attention;

Table run_scoring_bench(const ScoringBenchConfig& cfg, const ProgressCallback& progress) {
  XATTN_CHECK_IN("bench", at::hasCUDA() && at::detail::getCUDAHooks().getNumGPUs() > 0, "scoring needs a CUDA GPU");
  Table t;
  for (const char* c : {"case", "tokens", "heads q/kv", "stride", "scoring ms", "selection ms", "sum ms",
                        "cuDNN dense ms", "sum / cuDNN %", "density", "match vs reference %"})
    t.add_column(c, std::string(c) != "case" && std::string(c) != "heads q/kv");
  std::vector<BenchCase> todo;
  for (const std::string& name : cfg.cases) todo.push_back(bench_case(name));
  Progress prog(progress, "scoring", static_cast<int64_t>(todo.size() * (1 + cfg.strides.size())), "run");
  int64_t done = 0;
  const auto opt = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  for (const BenchCase& s : todo) {
    at::manual_seed(0);
    at::Tensor q = at::randn({1, s.len, s.q_heads, 128}, opt);
    at::Tensor k = at::randn({1, s.len, s.kv_heads, 128}, opt);
    at::Tensor v = at::randn({1, s.len, s.kv_heads, 128}, opt);
    // Every timing below issues back-to-back calls in each timed region (>= kSteadyRegionMs), as
    // a pipeline issues its estimate behind the previous layer's work: a lone selection call
    // would also time the host's launch latency, and a short region one phase of the power
    // controller's clock swings. cuDNN and each stride's scoring and selection run in the same
    // interleaved rounds, so a slower drift during the case reaches them alike.
    att::AttentionOptions o;
    o.causal = s.causal;
    const size_t ns = cfg.strides.size();
    std::vector<at::Tensor> scores(ns);
    std::vector<att::BlockMask> masks(ns);
    std::vector<att::XAttentionConfig> xcs(ns);
    std::vector<std::function<void()>> calls = {sdpa_dense_call(q, k, v, s.causal, "cudnn")};
    for (size_t i = 0; i < ns; ++i) {
      xcs[i].stride = cfg.strides[i];
      xcs[i].threshold = cfg.threshold;
      calls.push_back([&, i] { scores[i] = att::cuda::antidiagonal_scores(q, k, cfg.strides[i], 128, o); });
      calls.push_back([&, i] { masks[i] = att::cuda::select(scores[i], xcs[i], s.len, s.len, o); });
    }
    const std::vector<double> ms = median_ms_interleaved(calls, cfg.warmup, cfg.reps, kSteadyRegionMs);
    const double dense_ms = ms[0];
    prog.update(++done, s.name + " cuDNN " + fmt(dense_ms, 2) + " ms");
    for (size_t i = 0; i < ns; ++i) {
      const int stride = cfg.strides[i];
      const att::BlockMask& m = masks[i];
      std::string match = "";
      if (cfg.check) {
        att::AttentionOptions r = o;
        r.backend = att::Backend::kReference;
        const att::BlockMask ref = att::estimate(q, k, xcs[i], r);
        match = fmt(100.0 * m.mask.eq(ref.mask).to(at::kDouble).mean().item<double>(), 3);
      }
      const double score_ms = ms[1 + 2 * i], select_ms = ms[2 + 2 * i], sum = score_ms + select_ms;
      t.rows.push_back({s.name, std::to_string(s.len), std::to_string(s.q_heads) + "/" + std::to_string(s.kv_heads),
                        std::to_string(stride), fmt(score_ms, 3), fmt(select_ms, 3), fmt(sum, 3), fmt(dense_ms, 3),
                        fmt(100.0 * sum / dense_ms, 2), fmt(m.density(), 4), match});
      prog.update(++done, s.name + " S=" + std::to_string(stride));
    }
  }
  prog.finish();
  return t;
}

}  // namespace xattn::eval
