#include "eval/bench_attention.h"

#include <ATen/cuda/CUDAContext.h>

#include <algorithm>
#include <deque>
#include <functional>
#include <string>
#include <vector>

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
// One timed mode of a case. The first mode of a group is its cuDNN baseline (speedups are
// against it); a dense SDPA mode counts the dense FLOPs, a block-sparse mode its mask's computed
// blocks, and the whole call reports the density of the mask it built.
struct Mode {
  std::string name;
  std::function<void()> call;
  const att::BlockMask* mask = nullptr;        // block-sparse modes
  const att::AttentionStats* stats = nullptr;  // the whole estimate + attend call (from an untimed call)
  bool speedup = true;                         // false: a part of a call (the estimate alone)
};

// Each block-sparse mode followed by its twins under the --ab settings.
std::vector<Mode> with_ab_twins(const std::vector<Mode>& modes, const std::vector<std::string>& ab) {
  std::vector<Mode> out;
  for (const Mode& m : modes) {
    out.push_back(m);
    if (!m.mask) continue;
    for (const std::string& setting : ab) {
      Mode twin = m;
      twin.name = m.name + " [" + setting + "]";
      twin.call = with_setting(m.call, setting);
      out.push_back(twin);
    }
  }
  return out;
}

// Times the modes in interleaved rounds (each timed region >= kSteadyRegionMs of back-to-back
// calls, as a pipeline issues them: the host's launch latency of a short call stays out, and the
// region spans the power controller's clock swings) and adds their rows.
void time_modes(Table& t, const std::string& name, double dense_flops, const std::vector<Mode>& modes, int warmup,
                int reps) {
  std::vector<std::function<void()>> calls;
  for (const Mode& m : modes) calls.push_back(m.call);
  const std::vector<double> ms = median_ms_interleaved(calls, warmup, reps, kSteadyRegionMs);
  for (size_t i = 0; i < modes.size(); ++i) {
    const Mode& m = modes[i];
    std::string density = "1.0000", tfs = fmt(dense_flops / ms[i] / 1e9, 1);
    if (m.mask) {
      // FLOPs of the computed blocks: 4 * 128 * 128 * D per kept block.
      density = fmt(m.mask->density(), 4);
      tfs = fmt(4.0 * 128 * 128 * 128 * static_cast<double>(m.mask->kept.sum().item<int64_t>()) / ms[i] / 1e9, 1);
    } else if (m.stats) {
      density = fmt(m.stats->density(), 4), tfs = "";
    } else if (!m.speedup) {
      density = tfs = "";
    }
    t.rows.push_back({name, m.name, density, fmt(ms[i], 3), tfs, m.speedup ? fmt(ms[0] / ms[i], 2) : ""});
  }
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
    // Every mode of a case is timed in the same interleaved rounds as its cuDNN baseline, so a
    // clock drift during the case reaches all of them alike.
    std::vector<Mode> modes;
    modes.push_back({"cuDNN dense", sdpa_dense_call(q, k, v, s.causal, "cudnn")});
    bool fa2_ok = true;
    {
      std::function<void()> fa2 = sdpa_dense_call(q, k, v, s.causal, "flash");
      try {
        fa2();  // throws where the FlashAttention-2 backend cannot run these inputs
        modes.push_back({"FA2 dense", fa2});
      } catch (const std::exception&) {
        fa2_ok = false;
      }
    }
    att::AttentionOptions o;
    o.causal = s.causal;
    // The masks, built before any timing (std::deque: the modes keep pointers to them).
    std::deque<att::BlockMask> masks;
    masks.push_back(on_device(att::BlockMask::full(1, s.q_heads, 128, s.len, s.len, o)));
    modes.push_back({"ours dense (all blocks)", {}, &masks.back()});
    for (double d : cfg.densities) {
      att::XAttentionConfig xc;
      xc.selection = "top_ratio";
      xc.top_ratio = d;
      xc.stride = cfg.stride;
      masks.push_back(att::estimate(q, k, xc, o));
      modes.push_back({"ours sparse top-ratio " + fmt(d, 2), {}, &masks.back()});
    }
    for (Mode& m : modes)
      if (m.mask) m.call = [&q, &k, &v, &o, mask = m.mask] { att::block_sparse_attention(q, k, v, *mask, o); };
    // The whole call: estimate (scoring + selection kernels) + block-sparse attention, with a
    // Workspace as a pipeline passes one (no per-call allocation of the scoring scratch); and the
    // estimate alone (same workspace), so the whole call's cost splits into its two parts.
    att::Workspace workspace;
    att::AttentionOptions ow = o;
    ow.workspace = &workspace;
    att::AttentionSpec spec;
    spec.xattention.selection = "top_ratio";
    spec.xattention.top_ratio = 0.35;
    spec.xattention.stride = cfg.stride;
    att::AttentionStats st;
    const std::string sname = "(S=" + std::to_string(cfg.stride) + ", top-ratio 0.35)";
    modes.push_back({"ours estimate only " + sname, [&] { att::estimate(q, k, spec.xattention, ow); }, nullptr,
                     nullptr, false});
    // The timed call asks for no statistics (two small reductions more). Until 2026-11-28 they read
    // the density back from the GPU at every call, which left the device idle for the host's next
    // launches (causal 8K: 0.636 ms per call with them, H100). One untimed call fills the density
    // column.
    att::attention(q, k, v, spec, ow, &st);
    modes.push_back({"ours estimate+attend " + sname, [&] { att::attention(q, k, v, spec, ow); }, nullptr, &st});
    const size_t first_row = t.rows.size();
    time_modes(t, name, dense_flops, with_ab_twins(modes, cfg.ab), cfg.warmup, cfg.reps);
    if (!fa2_ok) t.rows.insert(t.rows.begin() + first_row + 1, {name, "FA2 dense (unavailable)", "", "", "", ""});
    if (name == "video-720p") {
      // Threshold selection needs structured inputs: the synthetic video-like workload tuned to
      // ~35% density at tau 0.9 (configs/density/video-720p.yaml), same shapes as the case.
      att::synthetic::VideoConfig vc;
      vc.frames = 33, vc.height = 45, vc.width = 80, vc.text_tokens = 256, vc.heads = s.q_heads, vc.head_dim = 128;
      att::synthetic::Workload w = att::synthetic::video_like(vc, at::kCUDA);
      w.opts.workspace = &workspace;
      const at::Tensor sq = w.q.to(at::kBFloat16), sk = w.k.to(at::kBFloat16), sv = w.v.to(at::kBFloat16);
      XATTN_CHECK_IN("bench", sq.size(1) == s.len, "synthetic video has ", sq.size(1), " tokens, the case ", s.len);
      att::XAttentionConfig xc;
      xc.threshold = 0.9;
      xc.stride = cfg.stride;
      const att::BlockMask m = att::estimate(sq, sk, xc, w.opts);
      att::AttentionSpec tspec;
      tspec.xattention = xc;
      att::AttentionStats tst;
      std::vector<Mode> syn;
      syn.push_back({"cuDNN dense (synthetic video)", sdpa_dense_call(sq, sk, sv, false, "cudnn")});
      syn.push_back({"ours sparse tau 0.90 (synthetic video)",
                     [&] { att::block_sparse_attention(sq, sk, sv, m, w.opts); }, &m});
      att::attention(sq, sk, sv, tspec, w.opts, &tst);  // the density column (untimed, as above)
      syn.push_back({"ours estimate+attend (S=" + std::to_string(cfg.stride) + ", tau 0.90, synthetic video)",
                     [&] { att::attention(sq, sk, sv, tspec, w.opts); }, nullptr, &tst});
      time_modes(t, name, dense_flops, with_ab_twins(syn, cfg.ab), cfg.warmup, cfg.reps);
    }
    prog.update(++done, name);
  }
  prog.finish();
  return t;
}

}  // namespace xattn::eval
