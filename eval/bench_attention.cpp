#include "eval/bench_attention.h"

#include <ATen/cuda/CUDAContext.h>

#include <algorithm>

#include "core/attention/synthetic.h"
#include "core/attention/xattention.h"
#include "core/error.h"
#include "eval/bench_cases.h"
#include "eval/gpu_timing.h"

namespace xattn::eval {

namespace att = xattn::attention;

namespace {
// Moves a mask's tensors to the GPU once, so timed calls copy nothing.
att::BlockMask on_device(att::BlockMask m) {
  m.mask = m.mask.cuda();
  m.indices = m.indices.cuda();
  m.counts = m.counts.cuda();
  return m;
}
}  // namespace

Table run_attention_bench(const AttentionBenchConfig& cfg, const ProgressCallback& progress) {
  XATTN_CHECK_IN("bench", at::hasCUDA() && at::detail::getCUDAHooks().getNumGPUs() > 0, "attention needs a CUDA GPU");
  Table t;
  for (const char* c : {"case", "mode", "density", "ms", "effective TF/s", "speedup vs cuDNN"})
    t.add_column(c, std::string(c) != "case" && std::string(c) != "mode");
  Progress prog(progress, "attention", static_cast<int64_t>(cfg.cases.size()), "case");
  int64_t done = 0;
  const auto opt = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  for (const std::string& name : cfg.cases) {
    const BenchCase& s = bench_case(name);
    at::manual_seed(0);
    at::Tensor q = at::randn({1, s.len, s.q_heads, 128}, opt);
    at::Tensor k = at::randn({1, s.len, s.kv_heads, 128}, opt);
    at::Tensor v = at::randn({1, s.len, s.kv_heads, 128}, opt);
    const double L = static_cast<double>(s.len);
    const double dense_flops = 4.0 * L * L * s.q_heads * 128 * (s.causal ? 0.5 : 1.0);
    const double cudnn = sdpa_dense_ms(q, k, v, s.causal, "cudnn", cfg.warmup, cfg.reps);
    t.rows.push_back({name, "cuDNN dense", "1.0000", fmt(cudnn, 3), fmt(dense_flops / cudnn / 1e9, 1), "1.00"});
    try {
      const double fa2 = sdpa_dense_ms(q, k, v, s.causal, "flash", cfg.warmup, cfg.reps);
      t.rows.push_back({name, "FA2 dense", "1.0000", fmt(fa2, 3), fmt(dense_flops / fa2 / 1e9, 1), fmt(cudnn / fa2, 2)});
    } catch (const std::exception&) {
      t.rows.push_back({name, "FA2 dense (unavailable)", "", "", "", ""});
    }
    att::AttentionOptions o;
    o.causal = s.causal;
    // FLOPs of the computed blocks: 4 * 128 * 128 * D per kept block.
    auto block_flops = [](const att::BlockMask& m) {
      return 4.0 * 128 * 128 * 128 * static_cast<double>(m.kept.sum().item<int64_t>());
    };
    auto time_mask = [&](const std::string& mode, const att::BlockMask& m) {
      const double ms = median_ms([&] { att::block_sparse_attention(q, k, v, m, o); }, cfg.warmup, cfg.reps);
      t.rows.push_back({name, mode, fmt(m.density(), 4), fmt(ms, 3), fmt(block_flops(m) / ms / 1e9, 1),
                        fmt(cudnn / ms, 2)});
    };
    time_mask("ours dense (all blocks)", on_device(att::BlockMask::full(1, s.q_heads, 128, s.len, s.len, o)));
    for (double d : cfg.densities) {
      att::XAttentionConfig xc;
      xc.selection = "top_ratio";
      xc.top_ratio = d;
      xc.stride = cfg.stride;
      time_mask("ours sparse top-ratio " + fmt(d, 2), att::estimate(q, k, xc, o));
    }
    // The whole call: estimate (scoring + selection kernels) + block-sparse attention, with a
    // Workspace as a pipeline passes one (no per-call allocation of the scoring scratch).
    att::Workspace workspace;
    o.workspace = &workspace;
    att::AttentionSpec spec;
    spec.xattention.selection = "top_ratio";
    spec.xattention.top_ratio = 0.35;
    spec.xattention.stride = cfg.stride;
    // The estimate alone (scoring + selection, same workspace), so the whole call's cost splits
    // into its two parts in the same run.
    const double est_ms = median_ms([&] { att::estimate(q, k, spec.xattention, o); }, cfg.warmup, cfg.reps);
    t.rows.push_back({name, "ours estimate only (S=" + std::to_string(cfg.stride) + ", top-ratio 0.35)", "",
                      fmt(est_ms, 3), "", ""});
    att::AttentionStats st;
    const double full_ms = median_ms([&] { att::attention(q, k, v, spec, o, &st); }, cfg.warmup, cfg.reps);
    t.rows.push_back({name, "ours estimate+attend (S=" + std::to_string(cfg.stride) + ", top-ratio 0.35)",
                      fmt(st.density, 4), fmt(full_ms, 3), "", fmt(cudnn / full_ms, 2)});
    if (name == "video-720p") {
      // Threshold selection needs structured inputs: the synthetic video-like workload tuned to
      // ~35% density at tau 0.9 (configs/density/video-720p.yaml), same shapes as the case.
      att::synthetic::VideoConfig vc;
      vc.frames = 33, vc.height = 45, vc.width = 80, vc.text_tokens = 256, vc.heads = s.q_heads, vc.head_dim = 128;
      att::synthetic::Workload w = att::synthetic::video_like(vc, at::kCUDA);
      w.opts.workspace = &workspace;
      const at::Tensor sq = w.q.to(at::kBFloat16), sk = w.k.to(at::kBFloat16), sv = w.v.to(at::kBFloat16);
      XATTN_CHECK_IN("bench", sq.size(1) == s.len, "synthetic video has ", sq.size(1), " tokens, the case ", s.len);
      const double cudnn_syn = sdpa_dense_ms(sq, sk, sv, false, "cudnn", cfg.warmup, cfg.reps);
      att::XAttentionConfig xc;
      xc.threshold = 0.9;
      xc.stride = cfg.stride;
      const att::BlockMask m = att::estimate(sq, sk, xc, w.opts);
      const double ms = median_ms([&] { att::block_sparse_attention(sq, sk, sv, m, w.opts); }, cfg.warmup, cfg.reps);
      t.rows.push_back({name, "ours sparse tau 0.90 (synthetic video)", fmt(m.density(), 4), fmt(ms, 3),
                        fmt(block_flops(m) / ms / 1e9, 1), fmt(cudnn_syn / ms, 2)});
      att::AttentionSpec tspec;
      tspec.xattention = xc;
      att::AttentionStats tst;
      const double tfull = median_ms([&] { att::attention(sq, sk, sv, tspec, w.opts, &tst); }, cfg.warmup, cfg.reps);
      t.rows.push_back({name, "ours estimate+attend (S=" + std::to_string(cfg.stride) + ", tau 0.90, synthetic video)",
                        fmt(tst.density, 4), fmt(tfull, 3), "", fmt(cudnn_syn / tfull, 2)});
    }
    prog.update(++done, name);
  }
  prog.finish();
  return t;
}

}  // namespace xattn::eval
