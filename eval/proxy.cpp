#include "eval/proxy.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <map>

#include "core/attention/synthetic.h"
#include "core/attention/xattention.h"
#include "core/error.h"
#include "core/log.h"

#include <chrono>

namespace xattn::eval {

namespace att = xattn::attention;
namespace syn = xattn::attention::synthetic;

namespace {

struct Setup {
  syn::Workload w;
  int block;
};

std::vector<Setup> workloads(const ProxyConfig& c) {
  if (c.size != "small" && c.size != "medium")
    throw Error("bench", "proxy: unknown size '" + c.size + "' (expected small or medium)");
  const bool medium = c.size == "medium";
  std::vector<Setup> out;
  syn::VideoConfig v;
  v.seed = c.seed;
  if (medium) {
    v.frames = 9, v.height = 30, v.width = 40, v.text_tokens = 128;  // 10,928 tokens
  }
  out.push_back({syn::video_like(v), medium ? 128 : 64});
  syn::LlmConfig l;
  l.seed = c.seed + 1;
  l.length = medium ? 8192 : 3072;
  out.push_back({syn::llm_like(l), medium ? 128 : 64});
  out.push_back({syn::random(1, medium ? 8192 : 2048, 4, 4, 64, false, c.seed + 2), medium ? 128 : 64});
  return out;
}

// Mean-pooled block logits, softmax over the row's computable key blocks.
at::Tensor pooled_scores(const att::BlockMask& like, const syn::Workload& w, int block) {
  const at::Tensor& q = w.q;
  const at::Tensor& k = w.k;
  const int64_t B = q.size(0), Lq = q.size(1), H = q.size(2), D = q.size(3), Lk = k.size(1), Hkv = k.size(2);
  const int64_t Qb = like.q_blocks(), Kb = like.k_blocks();
  auto pool = [block](const at::Tensor& x, int64_t nb) {
    const int64_t L = x.size(1);
    at::Tensor p = at::constant_pad_nd(x.to(at::kFloat), {0, 0, 0, 0, 0, nb * block - L});
    at::Tensor sums = p.view({x.size(0), nb, block, x.size(2), x.size(3)}).sum(2);
    at::Tensor n = (L - at::arange(nb, at::kLong) * block).clamp(1, block).to(at::kFloat).view({1, nb, 1, 1});
    return sums / n;  // [B, nb, H, D]
  };
  at::Tensor qp = pool(q, Qb).permute({0, 2, 1, 3});                                        // [B, H, Qb, D]
  at::Tensor kp = pool(k, Kb).permute({0, 2, 1, 3}).repeat_interleave(H / Hkv, 1);          // [B, H, Kb, D]
  at::Tensor logits = at::matmul(qp, kp.transpose(-1, -2)) / std::sqrt(static_cast<double>(D));
  // Blocks that cannot be computed get no score (selection ignores them anyway).
  at::Tensor full = att::BlockMask::full(B, 1, block, Lq, Lk, w.opts).mask;
  logits = logits.masked_fill(~full, -INFINITY);
  return at::softmax(logits, -1).nan_to_num(0.0);
}

}  // namespace

ProxyResult run_proxy(const ProxyConfig& c, const ProgressCallback& progress) {
  auto ws = workloads(c);
  const char* methods[] = {"antidiagonal", "diagonal", "mean-pooled", "random", "exact (oracle)"};
  Progress prog(progress, "proxy", static_cast<int64_t>(ws.size() * 5), "estimator");
  ProxyResult res;
  Table& t = res.estimators;
  t.add_column("workload", false);
  t.add_column("tokens", true);
  t.add_column("method", false);
  t.add_column("density", true);
  t.add_column("mass recall", true);
  t.add_column("rel L2 error", true);
  Table& hk = res.head_kinds;
  hk.add_column("workload", false);
  hk.add_column("head kind", false);
  hk.add_column("heads", true);
  hk.add_column("density", true);
  hk.add_column("mass recall", true);
  int64_t done = 0;
  for (const Setup& s : ws) {
    const syn::Workload& w = s.w;
    att::XAttentionConfig xc;
    xc.stride = c.stride;
    xc.block_size = s.block;
    xc.threshold = c.threshold;
    auto t0 = std::chrono::steady_clock::now();
    auto lap = [&t0](const std::string& what) {
      const auto now = std::chrono::steady_clock::now();
      XATTN_LOG_DEBUG("proxy: ", what, " ", std::chrono::duration<double>(now - t0).count(), " s");
      t0 = now;
    };
    const att::BlockMask ref_mask = att::estimate(w.q, w.k, xc, w.opts);
    lap(w.name + " estimate");
    const at::Tensor dense = att::dense_attention(w.q, w.k, w.v, w.opts).out;
    lap(w.name + " dense");
    const at::Tensor exact = syn::exact_block_mass(w.q, w.k, s.block, w.opts);
    lap(w.name + " exact mass");
    const int64_t Lq = w.q.size(1), Lk = w.k.size(1);
    auto gen = at::make_generator<at::CPUGeneratorImpl>(c.seed + 99);
    for (const char* m : methods) {
      const std::string name = m;
      att::BlockMask mask;
      if (name == "antidiagonal") {
        mask = ref_mask;
      } else {
        at::Tensor scores;
        if (name == "diagonal") scores = att::diagonal_block_scores(w.q, w.k, c.stride, s.block, w.opts);
        else if (name == "mean-pooled") scores = pooled_scores(ref_mask, w, s.block);
        else if (name == "random") scores = at::rand(ref_mask.mask.sizes(), gen, at::TensorOptions().dtype(at::kDouble));
        else scores = exact;
        mask = att::select_by_counts(scores, ref_mask.counts, s.block, Lq, Lk, w.opts);
      }
      lap(w.name + " " + name + " select");
      const at::Tensor out = att::block_sparse_attention(w.q, w.k, w.v, mask, w.opts).out;
      lap(w.name + " " + name + " attend");
      t.rows.push_back({w.name, std::to_string(Lq), name, fmt(mask.density(), 4),
                        fmt(syn::mass_recall(mask, exact).overall, 4), fmt(syn::relative_l2(out, dense), 4)});
      prog.update(++done, w.name + " " + name);
    }
    // XAttention's own selection per head kind.
    const at::Tensor dens = ref_mask.density_per_head();
    const syn::Recall rec = syn::mass_recall(ref_mask, exact);
    std::map<std::string, std::vector<int64_t>> by_kind;
    for (size_t h = 0; h < w.head_kinds.size(); ++h) by_kind[w.head_kinds[h]].push_back(static_cast<int64_t>(h));
    for (const auto& kv : by_kind) {
      double d = 0, r = 0;
      for (int64_t h : kv.second) {
        d += dens[h].item<double>();
        r += rec.per_head[h].item<double>();
      }
      const double n = static_cast<double>(kv.second.size());
      hk.rows.push_back({w.name, kv.first, std::to_string(kv.second.size()), fmt(d / n, 4), fmt(r / n, 4)});
    }
    hk.rows.push_back({w.name, "all", std::to_string(w.head_kinds.size()), fmt(ref_mask.density(), 4),
                       fmt(rec.overall, 4)});
  }
  prog.finish();
  return res;
}

}  // namespace xattn::eval
