#include "eval/bench_scoring.h"

#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>

#include <algorithm>
#include <deque>
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
  const bool ab = !cfg.ab.empty();  // a "setting" column for the --ab runs
  // scoring and selection: each alone (antidiagonal_scores, select); estimate: both as the library
  // runs them, one estimate() call (on Hopper the split scoring launch's finish and the row
  // selection share a kernel, so it takes less than their sum); the % and the mask are its own.
  for (const char* c : {"case", "tokens", "heads q/kv", "stride", "setting", "scoring ms", "selection ms", "estimate ms",
                        "cuDNN dense ms", "estimate / cuDNN %", "density", "match vs reference %"})
    if (ab || std::string(c) != "setting")
      t.add_column(c, std::string(c) != "case" && std::string(c) != "heads q/kv" && std::string(c) != "setting");
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
    // Runs: each stride, under the defaults and then under each --ab setting.
    struct Run {
      int stride;
      std::string setting;  // "" = defaults
      att::XAttentionConfig xc;
      at::Tensor scores;
      att::BlockMask selected, mask;  // select() on `scores`; the estimate() call's
    };
    std::deque<Run> runs;  // the calls keep pointers to their run
    for (int stride : cfg.strides) {
      std::vector<std::string> settings = {""};
      settings.insert(settings.end(), cfg.ab.begin(), cfg.ab.end());
      for (const std::string& setting : settings) {
        Run& r = runs.emplace_back();
        r.stride = stride, r.setting = setting;
        r.xc.stride = stride;
        r.xc.threshold = cfg.threshold;
      }
    }
    std::vector<std::function<void()>> calls = {sdpa_dense_call(q, k, v, s.causal, "cudnn")};
    for (Run& run : runs) {
      Run* r = &run;
      std::function<void()> score = [&q, &k, &o, r] {
        r->scores = att::cuda::antidiagonal_scores(q, k, r->stride, 128, o);
      };
      std::function<void()> select = [&o, len = s.len, r] {
        r->selected = att::cuda::select(r->scores, r->xc, len, len, o);
      };
      std::function<void()> est = [&q, &k, &o, r] { r->mask = att::cuda::estimate(q, k, r->xc, o); };
      for (const auto& call : {score, select, est})
        calls.push_back(r->setting.empty() ? call : with_setting(call, r->setting));
    }
    const std::vector<double> ms = median_ms_interleaved(calls, cfg.warmup, cfg.reps, kSteadyRegionMs);
    const double dense_ms = ms[0];
    prog.update(++done, s.name + " cuDNN " + fmt(dense_ms, 2) + " ms");
    for (size_t i = 0; i < runs.size(); ++i) {
      const Run& r = runs[i];
      std::string match = "";
      if (cfg.check && r.setting.empty()) {
        att::AttentionOptions ref_opts = o;
        ref_opts.backend = att::Backend::kReference;
        const att::BlockMask ref = att::estimate(q, k, r.xc, ref_opts);
        match = fmt(100.0 * r.mask.mask.eq(ref.mask).to(at::kDouble).mean().item<double>(), 3);
      }
      const double score_ms = ms[1 + 3 * i], select_ms = ms[2 + 3 * i], est_ms = ms[3 + 3 * i];
      std::vector<std::string> row = {s.name, std::to_string(s.len),
                                      std::to_string(s.q_heads) + "/" + std::to_string(s.kv_heads),
                                      std::to_string(r.stride)};
      if (ab) row.push_back(r.setting.empty() ? "defaults" : r.setting);
      for (const std::string& x : {fmt(score_ms, 3), fmt(select_ms, 3), fmt(est_ms, 3), fmt(dense_ms, 3),
                                   fmt(100.0 * est_ms / dense_ms, 2), fmt(r.mask.density(), 4), match})
        row.push_back(x);
      t.rows.push_back(row);
      if (r.setting.empty()) prog.update(++done, s.name + " S=" + std::to_string(r.stride));
    }
  }
  prog.finish();
  return t;
}

}  // namespace xattn::eval
