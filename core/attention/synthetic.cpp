#include "core/attention/synthetic.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "core/attention/geometry.h"
#include "core/device.h"
#include "core/error.h"

namespace xattn::attention::synthetic {

namespace {

constexpr double kPi = 3.14159265358979323846;

struct Rng {
  explicit Rng(uint64_t seed) : gen(at::make_generator<at::CPUGeneratorImpl>(seed)) {}
  at::Tensor normal(at::IntArrayRef shape) { return at::randn(shape, gen, at::TensorOptions().dtype(at::kFloat)); }
  at::Tensor uniform(at::IntArrayRef shape) { return at::rand(shape, gen, at::TensorOptions().dtype(at::kFloat)); }
  at::Tensor unit(int64_t d) {
    at::Tensor e = normal({d});
    return e / e.norm();
  }
  at::Generator gen;
};

// Random Fourier features: <phi(u), phi(u')> ≈ exp(-|u - u'|^2 / 2). u: [N, du] -> [N, D].
at::Tensor fourier_features(const at::Tensor& u, int64_t d, Rng& rng) {
  at::Tensor w = rng.normal({u.size(1), d});
  at::Tensor b = rng.uniform({d}) * (2 * kPi);
  return at::cos(at::matmul(u, w) + b) * std::sqrt(2.0 / static_cast<double>(d));
}

// Scales features so that q·k / sqrt(d) = peak * <phi, phi'>.
double amplitude(double peak, int64_t d) { return std::sqrt(peak) * std::pow(static_cast<double>(d), 0.25); }

}  // namespace

Workload video_like(const VideoConfig& c, const at::Device& device) {
  const std::string bad = config::validate(c, "video");
  if (!bad.empty()) throw Error("synthetic", bad);
  XATTN_CHECK_IN("synthetic", c.frames > 0 && c.height > 0 && c.width > 0 && c.heads > 0 && c.head_dim > 0,
                 "video_like: grid, heads and head_dim must be positive");
  XATTN_CHECK_IN("synthetic", c.sink_tokens >= 0 && c.text_tokens >= 0 && c.padded_text >= 0,
                 "video_like: token counts must be non-negative");
  Rng rng(static_cast<uint64_t>(c.seed));
  const int64_t nv = c.frames * c.height * c.width;
  const int64_t n = nv + c.text_tokens + c.padded_text;
  const int64_t d = c.head_dim;
  const double log_n = std::log(static_cast<double>(nv + c.text_tokens));
  const double root_d = std::pow(static_cast<double>(d), 0.25);

  at::Tensor idx = at::arange(nv, at::kFloat);
  at::Tensor t = at::floor(idx / static_cast<double>(c.height * c.width));
  at::Tensor y = at::remainder(at::floor(idx / static_cast<double>(c.width)), static_cast<double>(c.height));
  at::Tensor x = at::remainder(idx, static_cast<double>(c.width));

  at::Tensor q = at::zeros({c.batch, n, c.heads, d}, at::kFloat);
  at::Tensor k = at::zeros({c.batch, n, c.heads, d}, at::kFloat);
  Workload w;
  w.name = "video " + std::to_string(c.frames) + "x" + std::to_string(c.height) + "x" + std::to_string(c.width) +
           "+" + std::to_string(c.text_tokens) + " text";
  for (int64_t h = 0; h < c.heads; ++h) {
    at::Tensor u;
    std::string kind;
    double margin = 0;
    switch (h % 3) {
      case 0:  // spatial: (mostly) the same frame, nearby rows and columns
        kind = "spatial";
        margin = c.spatial_margin;
        u = at::stack({t / c.spatial_time_sigma, y / c.spatial_sigma, x / c.spatial_sigma}, 1);
        break;
      case 1:  // temporal: the same place in every frame
        kind = "temporal";
        margin = c.temporal_margin;
        u = at::stack({y / c.temporal_sigma, x / c.temporal_sigma}, 1);
        break;
      default:  // global: wide neighbourhoods across frames
        kind = "global";
        margin = c.global_margin;
        u = at::stack({t / c.global_time_sigma, y / c.global_sigma, x / c.global_sigma}, 1);
        break;
    }
    const double head_peak = std::max(0.0, log_n + margin);
    const double amp = amplitude(head_peak, d);
    w.head_kinds.push_back(kind);
    at::Tensor phi = fourier_features(u, d, rng) * amp;  // [nv, d]
    at::Tensor e_sink = rng.unit(d), e_text = rng.unit(d);
    // Each batch element gets its own noise so batches differ.
    for (int64_t b = 0; b < c.batch; ++b) {
      at::Tensor qh = phi + rng.normal({nv, d}) * 0.1;
      at::Tensor kh = phi + rng.normal({nv, d}) * 0.1;
      // Sinks and text: every video query carries the sink and text directions a little.
      const double sink_logit = head_peak - c.sink_gap, text_logit = head_peak - c.text_gap;
      qh = qh + e_sink.view({1, d}) * root_d + e_text.view({1, d}) * root_d;
      if (c.sink_tokens > 0)
        kh.narrow(0, 0, std::min(c.sink_tokens, nv)).add_(e_sink.view({1, d}) * (sink_logit * root_d));
      q[b].narrow(0, 0, nv).select(1, h).copy_(qh);
      k[b].narrow(0, 0, nv).select(1, h).copy_(kh);
      if (c.text_tokens > 0) {
        // Text keys answer the text direction; text queries look at text and sinks broadly.
        at::Tensor tk = e_text.view({1, d}) * (text_logit * root_d) + rng.normal({c.text_tokens, d}) * 0.3;
        at::Tensor tq = (e_text.view({1, d}) + e_sink.view({1, d})) * root_d + rng.normal({c.text_tokens, d}) * 0.3;
        k[b].narrow(0, nv, c.text_tokens).select(1, h).copy_(tk);
        q[b].narrow(0, nv, c.text_tokens).select(1, h).copy_(tq);
      }
      if (c.padded_text > 0) {
        // Padding positions hold large garbage that must never receive mass.
        k[b].narrow(0, nv + c.text_tokens, c.padded_text).select(1, h).copy_(rng.normal({c.padded_text, d}) * 5.0);
        q[b].narrow(0, nv + c.text_tokens, c.padded_text).select(1, h).copy_(rng.normal({c.padded_text, d}));
      }
    }
  }
  w.q = q.to(device);
  w.k = k.to(device);
  w.v = rng.normal({c.batch, n, c.heads, d}).to(device);
  if (c.padded_text > 0)
    w.opts.key_lengths = at::full({c.batch}, nv + c.text_tokens, at::TensorOptions().dtype(at::kLong).device(device));
  return w;
}

Workload llm_like(const LlmConfig& c, const at::Device& device) {
  const std::string bad = config::validate(c, "llm");
  if (!bad.empty()) throw Error("synthetic", bad);
  XATTN_CHECK_IN("synthetic", c.length > 0 && c.heads > 0 && c.kv_heads > 0 && c.heads % c.kv_heads == 0,
                 "llm_like: length > 0 and heads a multiple of kv_heads");
  Rng rng(static_cast<uint64_t>(c.seed));
  const int64_t n = c.length, d = c.head_dim, g = c.heads / c.kv_heads;
  const double peak = std::log(static_cast<double>(n)) + c.peak_margin;
  const double root_d = std::pow(static_cast<double>(d), 0.25);
  at::Tensor pos = at::arange(n, at::kFloat);
  at::Tensor q = at::zeros({c.batch, n, c.heads, d}, at::kFloat);
  at::Tensor k = at::zeros({c.batch, n, c.kv_heads, d}, at::kFloat);
  Workload w;
  w.name = "llm " + std::to_string(n) + " causal";
  w.opts.causal = true;
  for (int64_t hk = 0; hk < c.kv_heads; ++hk) {
    at::Tensor phi = fourier_features((pos / c.window_sigma).view({n, 1}), d, rng);
    at::Tensor e = rng.unit(d);
    // Vertical columns: token 0 and a few random positions.
    at::Tensor cols = at::cat({at::zeros({1}, at::kLong),
                               at::randint(1, n, {std::max<int64_t>(0, c.vertical_columns - 1)}, rng.gen, at::kLong)});
    for (int64_t b = 0; b < c.batch; ++b) {
      at::Tensor kh = phi * amplitude(peak, d) + rng.normal({n, d}) * 0.1;
      kh.index_add_(0, cols, (e.view({1, d}) * ((peak - c.vertical_gap) * root_d)).expand({cols.size(0), d}));
      k[b].select(1, hk).copy_(kh);
      for (int64_t j = 0; j < g; ++j) {
        // Alternate heads between slash-heavy (weaker columns) and vertical-heavy.
        const double col_weight = (j % 2 == 0) ? 1.0 : std::exp(-2.0 / (peak - c.vertical_gap));
        at::Tensor qh = phi * amplitude(peak, d) + e.view({1, d}) * (root_d * col_weight) + rng.normal({n, d}) * 0.1;
        q[b].select(1, hk * g + j).copy_(qh);
        w.head_kinds.push_back(j % 2 == 0 ? "vertical-slash" : "slash");
      }
    }
  }
  w.q = q.to(device);
  w.k = k.to(device);
  w.v = rng.normal({c.batch, n, c.kv_heads, d}).to(device);
  return w;
}

Workload random(int64_t batch, int64_t length, int64_t heads, int64_t kv_heads, int64_t head_dim, bool causal,
                uint64_t seed, const at::Device& device) {
  Rng rng(seed);
  Workload w;
  w.name = "random " + std::to_string(length) + (causal ? " causal" : "");
  w.q = rng.normal({batch, length, heads, head_dim}).to(device);
  w.k = rng.normal({batch, length, kv_heads, head_dim}).to(device);
  w.v = rng.normal({batch, length, kv_heads, head_dim}).to(device);
  w.opts.causal = causal;
  w.head_kinds.assign(static_cast<size_t>(heads), "random");
  return w;
}

// ---------------------------------------------------------------------------
double relative_l2(const at::Tensor& a, const at::Tensor& ref) {
  XATTN_CHECK_IN("metrics", a.sizes() == ref.sizes(), "relative_l2: shapes differ: ", shape_str(a), " vs ",
                 shape_str(ref));
  const at::Tensor r = ref.to(at::kDouble);
  const double denom = r.norm().item<double>();
  const double num = (a.to(at::kDouble) - r).norm().item<double>();
  return denom > 0 ? num / denom : num;
}

at::Tensor exact_block_mass(const at::Tensor& q, const at::Tensor& k, int64_t bs, const AttentionOptions& opts) {
  const Shapes s = Shapes::check(q, k, at::Tensor(), opts);
  const Geometry g = Geometry::make(s.batch, s.q_len, s.k_len, bs, opts);
  const double scale = opts.scale.value_or(1.0 / std::sqrt(static_cast<double>(s.head_dim)));
  const int64_t G = s.q_heads / s.kv_heads;
  const auto lopt = at::TensorOptions().dtype(at::kLong).device(q.device());
  at::Tensor out = at::zeros({s.batch, s.q_heads, g.q_blocks, g.k_blocks}, q.options().dtype(at::kDouble));
  at::Tensor keys = at::arange(s.k_len, lopt).view({1, s.k_len});
  const int64_t kpad = g.k_blocks * bs - s.k_len;
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t hk = 0; hk < s.kv_heads; ++hk) {
      at::Tensor kh = k[b].select(1, hk).to(at::kFloat).contiguous();
      at::Tensor qg = q[b].narrow(1, hk * G, G).permute({1, 0, 2}).to(at::kFloat).contiguous();
      for (int64_t i = 0; i < g.q_blocks; ++i) {
        const int64_t r0 = i * bs, r = std::min(bs, s.q_len - r0);
        at::Tensor logits = (at::matmul(qg.narrow(1, r0, r), kh.t()) * scale).contiguous();  // [G, r, Lk]
        at::Tensor allowed = keys < g.key_length(b);
        if (s.causal) allowed = allowed & (keys <= (at::arange(r0, r0 + r, lopt) + g.offset).view({r, 1}));
        mask_logits_(logits, allowed);
        at::Tensor p = at::softmax(logits, -1).nan_to_num_(0.0).to(at::kDouble);
        p = at::constant_pad_nd(p, {0, kpad}).view({G, r, g.k_blocks, bs}).sum({1, 3}) / static_cast<double>(r);
        out[b].narrow(0, hk * G, G).select(1, i).copy_(p);
      }
    }
  return out;
}

Recall mass_recall(const BlockMask& mask, const at::Tensor& exact) {
  XATTN_CHECK_IN("metrics", exact.sizes() == mask.mask.sizes(), "mass_recall: mass ", shape_str(exact),
                 " does not match mask ", shape_str(mask.mask));
  at::Tensor kept = (exact * mask.mask.to(exact.device())).sum({0, 2, 3});
  at::Tensor total = exact.sum({0, 2, 3});
  Recall r;
  r.per_head = (kept / total.clamp_min(1e-300)).to(at::kCPU);
  r.overall = kept.sum().item<double>() / std::max(total.sum().item<double>(), 1e-300);
  return r;
}

}  // namespace xattn::attention::synthetic
