#include "eval/bench_scoring.h"

#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>

#include <algorithm>

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
    // Every timing below issues back-to-back calls in each timed region (>= kRegionMs), as a
    // pipeline issues its estimate behind the previous layer's work: a lone selection call would
    // also time the host's launch latency.
    constexpr double kRegionMs = 5.0;
    const double dense_ms = cudnn_dense_ms(q, k, v, s.causal, cfg.warmup, cfg.reps, kRegionMs);
    prog.update(++done, s.name + " cuDNN " + fmt(dense_ms, 2) + " ms");
    att::AttentionOptions o;
    o.causal = s.causal;
    for (int stride : cfg.strides) {
      att::XAttentionConfig xc;
      xc.stride = stride;
      xc.threshold = cfg.threshold;
      at::Tensor scores;
      const double score_ms = median_ms([&] { scores = att::cuda::antidiagonal_scores(q, k, stride, 128, o); },
                                        cfg.warmup, cfg.reps, kRegionMs);
      att::BlockMask m;
      const double select_ms = median_ms([&] { m = att::cuda::select(scores, xc, s.len, s.len, o); }, cfg.warmup,
                                         cfg.reps, kRegionMs);
      std::string match = "";
      if (cfg.check) {
        att::AttentionOptions r = o;
        r.backend = att::Backend::kReference;
        const att::BlockMask ref = att::estimate(q, k, xc, r);
        match = fmt(100.0 * m.mask.eq(ref.mask).to(at::kDouble).mean().item<double>(), 3);
      }
      const double sum = score_ms + select_ms;
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
