#include "pipelines/text/clip_text.h"

#include <sstream>

#include "core/attention/xattention.h"
#include "core/device.h"
#include "core/error.h"
#include "core/safetensors/safetensors.h"
#include "pipelines/text/hf_model_util.h"

namespace xattn::text {

ClipTextConfig ClipTextConfig::from_json(const std::string& json_text, const std::string& origin) {
  const HfConfigReader r(json_text, origin);
  ClipTextConfig c;
  const std::string type = r.str("model_type", "clip_text_model");
  if (type != "clip_text_model" && type != "clip")
    r.fail("model_type", "'" + type + "' is not a CLIP text model (clip_text_model or clip)");
  c.vocab_size = r.integer("vocab_size", c.vocab_size);
  c.hidden_size = r.integer("hidden_size", c.hidden_size);
  c.intermediate_size = r.integer("intermediate_size", c.intermediate_size);
  c.num_layers = r.integer("num_hidden_layers", c.num_layers);
  c.num_heads = r.integer("num_attention_heads", c.num_heads);
  c.max_position_embeddings = r.integer("max_position_embeddings", c.max_position_embeddings);
  c.layer_norm_eps = r.number("layer_norm_eps", c.layer_norm_eps);
  c.hidden_act = r.str("hidden_act", c.hidden_act);
  c.eos_token_id = r.integer("eos_token_id", c.eos_token_id);
  const std::string bad = c.check();
  if (!bad.empty()) throw Error("model", origin + ": " + bad);
  return c;
}

ClipTextConfig ClipTextConfig::from_file(const std::string& path) { return from_json(read_text_file(path), path); }

std::string ClipTextConfig::check() const {
  std::ostringstream e;
  if (vocab_size <= 0 || hidden_size <= 0 || intermediate_size <= 0 || num_layers <= 0 || num_heads <= 0 ||
      max_position_embeddings <= 0)
    e << "sizes must be positive";
  else if (hidden_size % num_heads != 0)
    e << "hidden_size " << hidden_size << " is not a multiple of num_attention_heads " << num_heads;
  else if (hidden_act != "quick_gelu" && hidden_act != "gelu")
    e << "hidden_act: '" << hidden_act << "' is not supported (quick_gelu, gelu)";
  return e.str();
}

ClipTextEncoder::ClipTextEncoder(ClipTextConfig cfg, const Options& o) : cfg_(std::move(cfg)) {
  const auto t = at::TensorOptions().dtype(o.dtype).device(o.device);
  const int64_t H = cfg_.hidden_size, I = cfg_.intermediate_size;
  token_embedding_ = at::empty({cfg_.vocab_size, H}, t);
  position_embedding_ = at::empty({cfg_.max_position_embeddings, H}, t);
  final_ln_w_ = at::empty({H}, t);
  final_ln_b_ = at::empty({H}, t);
  layers_.resize(static_cast<size_t>(cfg_.num_layers));
  for (Layer& l : layers_) {
    for (at::Tensor* w : {&l.q_w, &l.k_w, &l.v_w, &l.o_w}) *w = at::empty({H, H}, t);
    for (at::Tensor* b : {&l.q_b, &l.k_b, &l.v_b, &l.o_b, &l.ln1_w, &l.ln1_b, &l.ln2_w, &l.ln2_b, &l.fc2_b})
      *b = at::empty({H}, t);
    l.fc1_w = at::empty({I, H}, t);
    l.fc1_b = at::empty({I}, t);
    l.fc2_w = at::empty({H, I}, t);
  }
}

template <typename Self, typename F>
void ClipTextEncoder::for_each_parameter(Self& self, F&& f) {
  const std::string& pre = self.prefix_;
  f(pre + "embeddings.token_embedding.weight", self.token_embedding_);
  f(pre + "embeddings.position_embedding.weight", self.position_embedding_);
  f(pre + "final_layer_norm.weight", self.final_ln_w_);
  f(pre + "final_layer_norm.bias", self.final_ln_b_);
  for (size_t i = 0; i < self.layers_.size(); ++i) {
    auto& l = self.layers_[i];
    const std::string b = pre + "encoder.layers." + std::to_string(i) + ".";
    f(b + "layer_norm1.weight", l.ln1_w);
    f(b + "layer_norm1.bias", l.ln1_b);
    f(b + "layer_norm2.weight", l.ln2_w);
    f(b + "layer_norm2.bias", l.ln2_b);
    f(b + "self_attn.q_proj.weight", l.q_w);
    f(b + "self_attn.q_proj.bias", l.q_b);
    f(b + "self_attn.k_proj.weight", l.k_w);
    f(b + "self_attn.k_proj.bias", l.k_b);
    f(b + "self_attn.v_proj.weight", l.v_w);
    f(b + "self_attn.v_proj.bias", l.v_b);
    f(b + "self_attn.out_proj.weight", l.o_w);
    f(b + "self_attn.out_proj.bias", l.o_b);
    f(b + "mlp.fc1.weight", l.fc1_w);
    f(b + "mlp.fc1.bias", l.fc1_b);
    f(b + "mlp.fc2.weight", l.fc2_w);
    f(b + "mlp.fc2.bias", l.fc2_b);
  }
}

std::map<std::string, at::Tensor> ClipTextEncoder::named_parameters() const {
  std::map<std::string, at::Tensor> p;
  for_each_parameter(*this, [&p](const std::string& name, const at::Tensor& t) { p[name] = t; });
  return p;
}

void ClipTextEncoder::to(const at::Device& device) {
  for_each_parameter(*this, [&device](const std::string&, at::Tensor& t) { t = t.to(device); });
}

ClipTextEncoder ClipTextEncoder::load(const std::string& dir, const Options& options) {
  return load_impl(dir, options, false);
}

void ClipTextEncoder::check_checkpoint(const std::string& dir) { load_impl(dir, {at::kMeta, at::kFloat}, true); }

ClipTextEncoder ClipTextEncoder::load_impl(const std::string& dir, const Options& options, bool dry_run) {
  ClipTextEncoder enc(ClipTextConfig::from_file(model_config_path(dir)), options);
  const safetensors::Checkpoint ckpt = open_checkpoint(dir);
  enc.prefix_ = find_prefix(ckpt, {"text_model.", ""}, "embeddings.token_embedding.weight", dir);
  load_parameters(ckpt, enc.named_parameters(), "the CLIP text encoder", dry_run);
  return enc;
}

ClipTextEncoder ClipTextEncoder::random(const ClipTextConfig& config, const Options& options, uint64_t seed) {
  const std::string bad = config.check();
  if (!bad.empty()) throw Error("model", "random CLIP text encoder: " + bad);
  ClipTextEncoder enc(config, options);
  fill_random(enc.named_parameters(), seed);
  return enc;
}

ClipTextEncoder::Output ClipTextEncoder::forward(const at::Tensor& ids_in, bool all_hidden_states) const {
  XATTN_CHECK(ids_in.dim() == 2, "ids: expected [B, L], got ", shape_str(ids_in));
  const int64_t B = ids_in.size(0), L = ids_in.size(1), H = cfg_.hidden_size, Nh = cfg_.num_heads, D = H / Nh;
  if (L < 1 || L > cfg_.max_position_embeddings)
    throw Error("model", "CLIP text: " + std::to_string(L) + " tokens; the model takes 1 to " +
                             std::to_string(cfg_.max_position_embeddings));
  const at::Tensor ids = ids_in.to(token_embedding_.device(), at::kLong);
  const int64_t lo = ids.min().item<int64_t>(), hi = ids.max().item<int64_t>();
  if (lo < 0 || hi >= cfg_.vocab_size)
    throw Error("model", "CLIP text: token id " + std::to_string(lo < 0 ? lo : hi) + " is outside the vocabulary [0, " +
                             std::to_string(cfg_.vocab_size) + ")");
  Output out;
  at::Tensor x = at::embedding(token_embedding_, ids) + position_embedding_.narrow(0, 0, L).unsqueeze(0);
  attention::AttentionOptions aopts;
  aopts.causal = true;
  attention::AttentionSpec dense;
  dense.mode = "dense";
  for (const Layer& l : layers_) {
    if (all_hidden_states) out.hidden_states.push_back(x);
    at::Tensor h = at::layer_norm(x, {H}, l.ln1_w, l.ln1_b, cfg_.layer_norm_eps);
    const at::Tensor q = at::linear(h, l.q_w, l.q_b).view({B, L, Nh, D});
    const at::Tensor k = at::linear(h, l.k_w, l.k_b).view({B, L, Nh, D});
    const at::Tensor v = at::linear(h, l.v_w, l.v_b).view({B, L, Nh, D});
    const at::Tensor a = attention::attention(q, k, v, dense, aopts);
    x = x + at::linear(a.reshape({B, L, H}), l.o_w, l.o_b);
    h = at::layer_norm(x, {H}, l.ln2_w, l.ln2_b, cfg_.layer_norm_eps);
    h = at::linear(h, l.fc1_w, l.fc1_b);
    h = cfg_.hidden_act == "quick_gelu" ? h * at::sigmoid(h * 1.702) : at::gelu(h);
    x = x + at::linear(h, l.fc2_w, l.fc2_b);
  }
  if (all_hidden_states) out.hidden_states.push_back(x);
  out.last_hidden_state = at::layer_norm(x, {H}, final_ln_w_, final_ln_b_, cfg_.layer_norm_eps);
  // End of text: the highest id (CLIP's vocabulary puts <|endoftext|> last) or the first eos id.
  const at::Tensor eos = cfg_.eos_token_id == 2 ? ids.argmax(-1) : ids.eq(cfg_.eos_token_id).to(at::kFloat).argmax(-1);
  out.pooled = out.last_hidden_state.reshape({B * L, H}).index_select(0, at::arange(B, ids.options()) * L + eos);
  return out;
}

}  // namespace xattn::text
