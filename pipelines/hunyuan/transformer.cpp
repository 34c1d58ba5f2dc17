#include "pipelines/hunyuan/transformer.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/device.h"
#include "core/error.h"
#include "core/ops/fused.h"
#include "pipelines/text/hf_model_util.h"

namespace xattn::hunyuan {

using pipelines::LayerId;

// ---------------------------------------------------------------------------------------------
// Config

TransformerConfig TransformerConfig::from_json(const std::string& json_text, const std::string& origin) {
  const text::HfConfigReader r(json_text, origin);
  TransformerConfig c;
  c.in_channels = r.integer("in_channels", c.in_channels);
  c.out_channels = r.integer("out_channels", c.out_channels);
  c.num_heads = r.integer("num_attention_heads", c.num_heads);
  c.head_dim = r.integer("attention_head_dim", c.head_dim);
  c.num_layers = r.integer("num_layers", c.num_layers);
  c.num_single_layers = r.integer("num_single_layers", c.num_single_layers);
  c.num_refiner_layers = r.integer("num_refiner_layers", c.num_refiner_layers);
  c.mlp_ratio = r.number("mlp_ratio", c.mlp_ratio);
  c.patch_size = r.integer("patch_size", c.patch_size);
  c.patch_size_t = r.integer("patch_size_t", c.patch_size_t);
  c.guidance_embeds = r.boolean("guidance_embeds", c.guidance_embeds);
  c.text_embed_dim = r.integer("text_embed_dim", c.text_embed_dim);
  c.pooled_projection_dim = r.integer("pooled_projection_dim", c.pooled_projection_dim);
  c.rope_theta = r.number("rope_theta", c.rope_theta);
  const std::vector<int64_t> axes = r.int_list("rope_axes_dim");
  if (!axes.empty()) c.rope_axes_dim = axes;
  const std::string qk = r.str("qk_norm", "rms_norm");
  if (qk != "rms_norm") r.fail("qk_norm", "'" + qk + "' is not supported (rms_norm)");
  const std::string image_cond = r.str("image_condition_type", "");
  if (!image_cond.empty()) r.fail("image_condition_type", "image-to-video conditioning is not supported");
  const std::string bad = c.check();
  if (!bad.empty()) throw Error("model", origin + ": " + bad);
  return c;
}

TransformerConfig TransformerConfig::from_file(const std::string& path) {
  return from_json(text::read_text_file(path), path);
}

std::string TransformerConfig::to_json() const {
  nlohmann::json j = {{"_class_name", "HunyuanVideoTransformer3DModel"},
                      {"in_channels", in_channels},
                      {"out_channels", out_channels},
                      {"num_attention_heads", num_heads},
                      {"attention_head_dim", head_dim},
                      {"num_layers", num_layers},
                      {"num_single_layers", num_single_layers},
                      {"num_refiner_layers", num_refiner_layers},
                      {"mlp_ratio", mlp_ratio},
                      {"patch_size", patch_size},
                      {"patch_size_t", patch_size_t},
                      {"qk_norm", "rms_norm"},
                      {"guidance_embeds", guidance_embeds},
                      {"text_embed_dim", text_embed_dim},
                      {"pooled_projection_dim", pooled_projection_dim},
                      {"rope_theta", rope_theta},
                      {"rope_axes_dim", rope_axes_dim}};
  return j.dump(2);
}

std::string TransformerConfig::check() const {
  std::ostringstream e;
  int64_t axes = 0;
  for (int64_t a : rope_axes_dim) axes += a;
  if (in_channels < 1 || out_channels < 1 || num_heads < 1 || head_dim < 2 || num_layers < 0 ||
      num_single_layers < 0 || num_refiner_layers < 0 || patch_size < 1 || patch_size_t < 1 || text_embed_dim < 1 ||
      pooled_projection_dim < 1 || !(mlp_ratio > 0))
    e << "sizes must be positive";
  else if (rope_axes_dim.size() != 3 || axes != head_dim)
    e << "rope_axes_dim must be 3 even numbers summing to attention_head_dim " << head_dim;
  else if (rope_axes_dim[0] % 2 || rope_axes_dim[1] % 2 || rope_axes_dim[2] % 2)
    e << "rope_axes_dim entries must be even";
  return e.str();
}

// ---------------------------------------------------------------------------------------------
// Parameters

Transformer::Transformer(TransformerConfig cfg, const ModelOptions& o) : cfg_(std::move(cfg)) {
  const auto t = at::TensorOptions().dtype(o.dtype).device(o.device);
  const int64_t D = cfg_.inner_dim(), M = static_cast<int64_t>(static_cast<double>(D) * cfg_.mlp_ratio);
  patch_w_ = at::empty({D, cfg_.in_channels, cfg_.patch_size_t, cfg_.patch_size, cfg_.patch_size}, t);
  patch_b_ = at::empty({D}, t);
  time_1_.make(256, D, t);
  time_2_.make(D, D, t);
  if (cfg_.guidance_embeds) {
    guid_1_.make(256, D, t);
    guid_2_.make(D, D, t);
  }
  text_1_.make(cfg_.pooled_projection_dim, D, t);
  text_2_.make(D, D, t);
  ctx_in_.make(cfg_.text_embed_dim, D, t);
  ctx_time_1_.make(256, D, t);
  ctx_time_2_.make(D, D, t);
  ctx_text_1_.make(cfg_.text_embed_dim, D, t);
  ctx_text_2_.make(D, D, t);
  refiner_.resize(static_cast<size_t>(cfg_.num_refiner_layers));
  for (RefinerBlock& b : refiner_) {
    for (at::Tensor* p : {&b.norm1_w, &b.norm1_b, &b.norm2_w, &b.norm2_b}) *p = at::empty({D}, t);
    for (Linear* l : {&b.q, &b.k, &b.v, &b.out}) l->make(D, D, t);
    b.ff_in.make(D, M, t);
    b.ff_out.make(M, D, t);
    b.ada.make(D, 2 * D, t);
  }
  dual_.resize(static_cast<size_t>(cfg_.num_layers));
  for (DualBlock& b : dual_) {
    b.norm1.make(D, 6 * D, t);
    b.norm1_ctx.make(D, 6 * D, t);
    for (Linear* l : {&b.q, &b.k, &b.v, &b.add_q, &b.add_k, &b.add_v, &b.out, &b.add_out}) l->make(D, D, t);
    b.ff_in.make(D, M, t);
    b.ff_out.make(M, D, t);
    b.ffc_in.make(D, M, t);
    b.ffc_out.make(M, D, t);
    for (at::Tensor* p : {&b.norm_q, &b.norm_k, &b.norm_added_q, &b.norm_added_k}) *p = at::empty({cfg_.head_dim}, t);
  }
  single_.resize(static_cast<size_t>(cfg_.num_single_layers));
  for (SingleBlock& b : single_) {
    b.norm.make(D, 3 * D, t);
    for (Linear* l : {&b.q, &b.k, &b.v}) l->make(D, D, t);
    b.proj_mlp.make(D, M, t);
    b.proj_out.make(D + M, D, t);
    b.norm_q = at::empty({cfg_.head_dim}, t);
    b.norm_k = at::empty({cfg_.head_dim}, t);
  }
  norm_out_.make(D, 2 * D, t);
  proj_out_.make(D, cfg_.patch_size_t * cfg_.patch_size * cfg_.patch_size * cfg_.out_channels, t);
}

Params Transformer::named_parameters() const {
  Params p;
  p["x_embedder.proj.weight"] = patch_w_;
  p["x_embedder.proj.bias"] = patch_b_;
  time_1_.add_to(p, "time_text_embed.timestep_embedder.linear_1");
  time_2_.add_to(p, "time_text_embed.timestep_embedder.linear_2");
  if (cfg_.guidance_embeds) {
    guid_1_.add_to(p, "time_text_embed.guidance_embedder.linear_1");
    guid_2_.add_to(p, "time_text_embed.guidance_embedder.linear_2");
  }
  text_1_.add_to(p, "time_text_embed.text_embedder.linear_1");
  text_2_.add_to(p, "time_text_embed.text_embedder.linear_2");
  ctx_in_.add_to(p, "context_embedder.proj_in");
  ctx_time_1_.add_to(p, "context_embedder.time_text_embed.timestep_embedder.linear_1");
  ctx_time_2_.add_to(p, "context_embedder.time_text_embed.timestep_embedder.linear_2");
  ctx_text_1_.add_to(p, "context_embedder.time_text_embed.text_embedder.linear_1");
  ctx_text_2_.add_to(p, "context_embedder.time_text_embed.text_embedder.linear_2");
  for (size_t i = 0; i < refiner_.size(); ++i) {
    const RefinerBlock& b = refiner_[i];
    const std::string n = "context_embedder.token_refiner.refiner_blocks." + std::to_string(i) + ".";
    p[n + "norm1.weight"] = b.norm1_w;
    p[n + "norm1.bias"] = b.norm1_b;
    p[n + "norm2.weight"] = b.norm2_w;
    p[n + "norm2.bias"] = b.norm2_b;
    b.q.add_to(p, n + "attn.to_q");
    b.k.add_to(p, n + "attn.to_k");
    b.v.add_to(p, n + "attn.to_v");
    b.out.add_to(p, n + "attn.to_out.0");
    b.ff_in.add_to(p, n + "ff.net.0.proj");
    b.ff_out.add_to(p, n + "ff.net.2");
    b.ada.add_to(p, n + "norm_out.linear");
  }
  for (size_t i = 0; i < dual_.size(); ++i) {
    const DualBlock& b = dual_[i];
    const std::string n = "transformer_blocks." + std::to_string(i) + ".";
    b.norm1.add_to(p, n + "norm1.linear");
    b.norm1_ctx.add_to(p, n + "norm1_context.linear");
    b.q.add_to(p, n + "attn.to_q");
    b.k.add_to(p, n + "attn.to_k");
    b.v.add_to(p, n + "attn.to_v");
    b.add_q.add_to(p, n + "attn.add_q_proj");
    b.add_k.add_to(p, n + "attn.add_k_proj");
    b.add_v.add_to(p, n + "attn.add_v_proj");
    b.out.add_to(p, n + "attn.to_out.0");
    b.add_out.add_to(p, n + "attn.to_add_out");
    p[n + "attn.norm_q.weight"] = b.norm_q;
    p[n + "attn.norm_k.weight"] = b.norm_k;
    p[n + "attn.norm_added_q.weight"] = b.norm_added_q;
    p[n + "attn.norm_added_k.weight"] = b.norm_added_k;
    b.ff_in.add_to(p, n + "ff.net.0.proj");
    b.ff_out.add_to(p, n + "ff.net.2");
    b.ffc_in.add_to(p, n + "ff_context.net.0.proj");
    b.ffc_out.add_to(p, n + "ff_context.net.2");
  }
  for (size_t i = 0; i < single_.size(); ++i) {
    const SingleBlock& b = single_[i];
    const std::string n = "single_transformer_blocks." + std::to_string(i) + ".";
    b.norm.add_to(p, n + "norm.linear");
    b.q.add_to(p, n + "attn.to_q");
    b.k.add_to(p, n + "attn.to_k");
    b.v.add_to(p, n + "attn.to_v");
    p[n + "attn.norm_q.weight"] = b.norm_q;
    p[n + "attn.norm_k.weight"] = b.norm_k;
    b.proj_mlp.add_to(p, n + "proj_mlp");
    b.proj_out.add_to(p, n + "proj_out");
  }
  norm_out_.add_to(p, "norm_out.linear");
  proj_out_.add_to(p, "proj_out");
  return p;
}

int64_t Transformer::parameter_bytes() const {
  int64_t n = 0;
  for (const auto& kv : named_parameters()) n += kv.second.numel() * static_cast<int64_t>(kv.second.element_size());
  return n;
}

Transformer Transformer::load(const std::string& dir, const ModelOptions& options) {
  Transformer t(TransformerConfig::from_file(text::model_config_path(dir)), options);
  text::load_parameters(text::open_checkpoint(dir), t.named_parameters(), "the transformer");
  return t;
}

void Transformer::check_checkpoint(const std::string& dir) {
  Transformer t(TransformerConfig::from_file(text::model_config_path(dir)), {at::kMeta, at::kFloat});
  text::load_parameters(text::open_checkpoint(dir), t.named_parameters(), "the transformer", /*dry_run=*/true);
}

Transformer Transformer::random(const TransformerConfig& config, const ModelOptions& options, uint64_t seed) {
  const std::string bad = config.check();
  if (!bad.empty()) throw Error("model", "random transformer: " + bad);
  Transformer t(config, options);
  text::fill_random(t.named_parameters(), seed);
  return t;
}

// ---------------------------------------------------------------------------------------------
// Forward

namespace {

constexpr double kEps = 1e-6;  // the QK RMSNorm epsilon of HunyuanVideo

at::Tensor mlp_gelu(const Linear& in, const Linear& out, const at::Tensor& x) {
  return out(at::gelu(in(x), "tanh"));
}

}  // namespace

std::pair<at::Tensor, at::Tensor> Transformer::rope(int64_t t, int64_t h, int64_t w, const at::Device& device) const {
  const auto f32 = at::TensorOptions().dtype(at::kFloat).device(device);
  const std::vector<at::Tensor> grid = at::meshgrid({at::arange(t, f32), at::arange(h, f32), at::arange(w, f32)}, "ij");
  std::vector<at::Tensor> coss, sins;
  for (size_t i = 0; i < 3; ++i) {
    const int64_t d = cfg_.rope_axes_dim[i];
    const at::Tensor exps = at::arange(0, d, 2, f32).narrow(0, 0, d / 2) / static_cast<double>(d);
    const at::Tensor freqs = at::pow(cfg_.rope_theta, exps).reciprocal();
    const at::Tensor angles = at::outer(grid[i].reshape({-1}), freqs);  // [N, d/2]
    coss.push_back(angles.cos().repeat_interleave(2, 1));
    sins.push_back(angles.sin().repeat_interleave(2, 1));
  }
  return {at::cat(coss, 1), at::cat(sins, 1)};
}

at::Tensor Transformer::refine(const at::Tensor& states, const at::Tensor& mask, const at::Tensor& counts,
                               const at::Tensor& timestep) const {
  // states [B, L, E] (model dtype), mask [B, L] (1 valid), already trimmed to the longest prompt;
  // counts [B] int64 on the CPU.
  const int64_t B = states.size(0), L = states.size(1), H = cfg_.num_heads, Dh = cfg_.head_dim;
  const at::Tensor m = mask.to(at::kFloat).unsqueeze(-1);
  const at::Tensor pooled = ((states * m).sum(1) / m.sum(1)).to(states.scalar_type());
  const at::Tensor temb = ctx_time_2_(at::silu(ctx_time_1_(timestep_sinusoid(timestep).to(states.scalar_type())))) +
                          ctx_text_2_(at::silu(ctx_text_1_(pooled)));
  at::Tensor x = ctx_in_(states);
  attention::AttentionOptions opts;
  if (counts.min().item<int64_t>() < L) opts.key_lengths = counts.to(states.device());  // shorter prompts mask their padding
  for (const RefinerBlock& b : refiner_) {
    const at::Tensor n1 = at::layer_norm(x, {x.size(-1)}, b.norm1_w, b.norm1_b, 1e-6);
    const at::Tensor a = attention::dense_attention(b.q(n1).view({B, L, H, Dh}), b.k(n1).view({B, L, H, Dh}),
                                                    b.v(n1).view({B, L, H, Dh}), opts)
                             .out.reshape({B, L, H * Dh});
    const std::vector<at::Tensor> g = b.ada(at::silu(temb)).chunk(2, 1);  // gate_msa, gate_mlp
    x = x + b.out(a) * g[0].unsqueeze(1);
    const at::Tensor n2 = at::layer_norm(x, {x.size(-1)}, b.norm2_w, b.norm2_b, 1e-6);
    x = x + b.ff_out(at::silu(b.ff_in(n2))) * g[1].unsqueeze(1);
  }
  return x;
}

at::Tensor Transformer::forward(const TransformerInputs& in, const AttentionFn& attend) const {
  const at::Tensor& lat = in.latents;
  XATTN_CHECK(lat.dim() == 5 && lat.size(1) == cfg_.in_channels, "latents: expected [B, ", cfg_.in_channels,
              ", T, H, W], got ", shape_str(lat));
  const int64_t B = lat.size(0), p = cfg_.patch_size, pt = cfg_.patch_size_t;
  XATTN_CHECK(lat.size(2) % pt == 0 && lat.size(3) % p == 0 && lat.size(4) % p == 0, "latents ", shape_str(lat),
              ": T, H, W must be multiples of the patch size (", pt, ", ", p, ", ", p, ")");
  XATTN_CHECK(in.text_states.dim() == 3 && in.text_states.size(0) == B && in.text_states.size(2) == cfg_.text_embed_dim,
              "text_states: expected [", B, ", L, ", cfg_.text_embed_dim, "], got ", shape_str(in.text_states));
  XATTN_CHECK(in.pooled.dim() == 2 && in.pooled.size(0) == B && in.pooled.size(1) == cfg_.pooled_projection_dim,
              "pooled: expected [", B, ", ", cfg_.pooled_projection_dim, "], got ", shape_str(in.pooled));
  XATTN_CHECK(in.timestep.numel() == B, "timestep: expected ", B, " values, got ", shape_str(in.timestep));
  XATTN_CHECK(!cfg_.guidance_embeds || (in.guidance.defined() && in.guidance.numel() == B),
              "guidance: this transformer embeds guidance; expected ", B, " values");
  const auto dt = patch_w_.scalar_type();
  const at::Device dev = patch_w_.device();
  const int64_t Tp = lat.size(2) / pt, Hp = lat.size(3) / p, Wp = lat.size(4) / p, N = Tp * Hp * Wp;
  const int64_t D = cfg_.inner_dim(), Hh = cfg_.num_heads, Dh = cfg_.head_dim;

  // Conditioning vector.
  const at::Tensor t = in.timestep.to(dev).reshape({B});
  at::Tensor temb = time_2_(at::silu(time_1_(timestep_sinusoid(t).to(dt))));
  if (cfg_.guidance_embeds) temb = temb + guid_2_(at::silu(guid_1_(timestep_sinusoid(in.guidance.to(dev).reshape({B})).to(dt))));
  temb = temb + text_2_(at::silu(text_1_(in.pooled.to(dev, dt))));
  const at::Tensor temb_act = at::silu(temb);

  // Text: drop positions beyond the longest valid prompt, then refine.
  at::Tensor mask = in.text_mask.defined() ? in.text_mask.to(dev, at::kLong)
                                           : at::ones({B, in.text_states.size(1)}, at::TensorOptions().dtype(at::kLong).device(dev));
  // Valid text tokens per prompt, read once on the CPU (one small copy instead of a device sync per
  // min/max below and in the refiner).
  const at::Tensor counts = mask.sum(1).cpu();
  const int64_t Lt = std::max<int64_t>(1, counts.max().item<int64_t>());
  mask = mask.narrow(1, 0, Lt);
  at::Tensor c = refine(in.text_states.to(dev, dt).narrow(1, 0, Lt), mask, counts, t);

  // Video tokens.
  at::Tensor x = at::conv3d(lat.to(dev, dt), patch_w_, patch_b_, {pt, p, p}).flatten(2).transpose(1, 2);  // [B, N, D]
  const auto cs = rope(Tp, Hp, Wp, dev);
  const at::Tensor cos_all = at::cat({cs.first, at::ones({Lt, Dh}, cs.first.options())});
  const at::Tensor sin_all = at::cat({cs.second, at::zeros({Lt, Dh}, cs.second.options())});

  attention::AttentionOptions opts;
  if (counts.min().item<int64_t>() < Lt) opts.key_lengths = (counts.clamp_max(Lt) + N).to(dev);  // [video ‖ valid text]
  const AttentionFn run = attend ? attend
                                 : AttentionFn([](const LayerId&, const at::Tensor& q, const at::Tensor& k,
                                                  const at::Tensor& v, const attention::AttentionOptions& o) {
                                     return attention::dense_attention(q, k, v, o).out;
                                   });
  const int64_t L = N + Lt;
  for (size_t i = 0; i < dual_.size(); ++i) {
    const DualBlock& b = dual_[i];
    const std::vector<at::Tensor> m = b.norm1(temb_act).chunk(6, 1);      // shift, scale, gate (msa, mlp)
    const std::vector<at::Tensor> mc = b.norm1_ctx(temb_act).chunk(6, 1);
    const at::Tensor xn = modulate(layer_norm(x), m[0], m[1]);
    const at::Tensor cn = modulate(layer_norm(c), mc[0], mc[1]);
    const at::Tensor q = at::cat({ops::rms_norm_rope(b.q(xn).view({B, N, Hh, Dh}), b.norm_q, kEps, cs.first, cs.second),
                                  ops::rms_norm_rope(b.add_q(cn).view({B, Lt, Hh, Dh}), b.norm_added_q, kEps)}, 1);
    const at::Tensor k = at::cat({ops::rms_norm_rope(b.k(xn).view({B, N, Hh, Dh}), b.norm_k, kEps, cs.first, cs.second),
                                  ops::rms_norm_rope(b.add_k(cn).view({B, Lt, Hh, Dh}), b.norm_added_k, kEps)}, 1);
    const at::Tensor v = at::cat({b.v(xn).view({B, N, Hh, Dh}), b.add_v(cn).view({B, Lt, Hh, Dh})}, 1);
    const at::Tensor a = run(LayerId{LayerId::Stream::kDual, static_cast<int>(i)}, q, k, v, opts).reshape({B, L, D});
    x = x + b.out(a.narrow(1, 0, N)) * m[2].unsqueeze(1);
    c = c + b.add_out(a.narrow(1, N, Lt)) * mc[2].unsqueeze(1);
    x = x + m[5].unsqueeze(1) * mlp_gelu(b.ff_in, b.ff_out, modulate(layer_norm(x), m[3], m[4]));
    c = c + mc[5].unsqueeze(1) * mlp_gelu(b.ffc_in, b.ffc_out, modulate(layer_norm(c), mc[3], mc[4]));
  }
  at::Tensor h = at::cat({x, c}, 1);  // [B, N + Lt, D]
  for (size_t i = 0; i < single_.size(); ++i) {
    const SingleBlock& b = single_[i];
    const std::vector<at::Tensor> m = b.norm(temb_act).chunk(3, 1);  // shift, scale, gate
    const at::Tensor hn = modulate(layer_norm(h), m[0], m[1]);
    const at::Tensor mlp = at::gelu(b.proj_mlp(hn), "tanh");
    const at::Tensor q = ops::rms_norm_rope(b.q(hn).view({B, L, Hh, Dh}), b.norm_q, kEps, cos_all, sin_all);
    const at::Tensor k = ops::rms_norm_rope(b.k(hn).view({B, L, Hh, Dh}), b.norm_k, kEps, cos_all, sin_all);
    const at::Tensor a =
        run(LayerId{LayerId::Stream::kSingle, static_cast<int>(i)}, q, k, b.v(hn).view({B, L, Hh, Dh}), opts)
            .reshape({B, L, D});
    h = h + m[2].unsqueeze(1) * b.proj_out(at::cat({a, mlp}, -1));
  }
  x = h.narrow(1, 0, N);

  const std::vector<at::Tensor> fin = norm_out_(temb_act).chunk(2, 1);  // scale, shift (diffusers' order)
  const at::Tensor y = proj_out_(modulate(layer_norm(x), fin[1], fin[0]));  // [B, N, pt*p*p*C]
  return y.reshape({B, Tp, Hp, Wp, cfg_.out_channels, pt, p, p})
      .permute({0, 4, 1, 5, 2, 6, 3, 7})
      .reshape({B, cfg_.out_channels, Tp * pt, Hp * p, Wp * p});
}

}  // namespace xattn::hunyuan
