#include "eval/density.h"

#include <chrono>
#include <map>

#include "core/attention/xattention.h"
#include "core/device.h"
#include "core/error.h"

namespace xattn::eval {

namespace att = xattn::attention;
namespace syn = xattn::attention::synthetic;

Table run_density(const DensityBench& c, const ProgressCallback& progress) {
  const std::string bad = config::validate(c, "density");
  if (!bad.empty()) throw Error("bench", bad);
  const at::Device device = parse_device(c.device);
  const at::ScalarType dtype = parse_dtype(c.dtype, device);
  Progress prog(progress, "density", 2, "stage");
  syn::Workload w = c.workload == "video" ? syn::video_like(c.video, device) : syn::llm_like(c.llm, device);
  w.q = w.q.to(dtype);
  w.k = w.k.to(dtype);
  prog.update(1, "generated " + w.name);
  att::XAttentionConfig xc;
  xc.stride = c.stride;
  xc.block_size = c.block_size;
  xc.threshold = c.threshold;
  att::estimate(w.q.narrow(1, 0, std::min<int64_t>(w.q.size(1), 1024)), w.k.narrow(1, 0, std::min<int64_t>(w.k.size(1), 1024)),
                xc, w.opts.key_lengths.defined() ? att::AttentionOptions{w.opts.causal, {}, {}} : w.opts);  // warm-up
  const auto t0 = std::chrono::steady_clock::now();
  const att::BlockMask m = att::estimate(w.q, w.k, xc, w.opts);
  const double overall = m.density();  // synchronises
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  prog.update(2, "estimated");
  prog.finish();
  const at::Tensor dens = m.density_per_head().cpu();
  Table t;
  t.add_column("workload", false);
  t.add_column("tokens", true);
  t.add_column("device", false);
  t.add_column("stride", true);
  t.add_column("tau", true);
  t.add_column("head kind", false);
  t.add_column("heads", true);
  t.add_column("density", true);
  t.add_column("estimate ms (reference)", true);
  std::map<std::string, std::vector<int64_t>> by_kind;
  for (size_t h = 0; h < w.head_kinds.size(); ++h) by_kind[w.head_kinds[h]].push_back(static_cast<int64_t>(h));
  const std::string tokens = std::to_string(w.q.size(1));
  const std::string dev = device.str() + " " + dtype_name(dtype);
  for (const auto& kv : by_kind) {
    double d = 0;
    for (int64_t h : kv.second) d += dens[h].item<double>();
    t.rows.push_back({w.name, tokens, dev, std::to_string(c.stride), fmt(c.threshold, 3), kv.first,
                      std::to_string(kv.second.size()), fmt(d / static_cast<double>(kv.second.size()), 4), ""});
  }
  t.rows.push_back({w.name, tokens, dev, std::to_string(c.stride), fmt(c.threshold, 3), "all",
                    std::to_string(w.head_kinds.size()), fmt(overall, 4), fmt(ms, 1)});
  return t;
}

}  // namespace xattn::eval
