#include "pipelines/text/decoder_lm.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/device.h"
#include "core/error.h"
#include "core/safetensors/safetensors.h"
#include "pipelines/text/hf_model_util.h"

namespace xattn::text {
namespace {

const std::vector<std::string> kSupportedTypes = {"llama", "qwen2", "qwen2_vl", "qwen2_vl_text", "qwen2_5_vl",
                                                  "qwen2_5_vl_text"};

// Rotary inverse frequencies [D/2] in fp32, with the operation order transformers uses (so fp32
// results agree to the last bits): 1 / theta^(2i/D), then llama3's band-wise scaling.
at::Tensor rope_inverse_frequencies(const RopeConfig& r, int64_t D) {
  const at::Tensor exps = at::arange(0, D, 2, at::kLong).to(at::kFloat) / static_cast<double>(D);
  at::Tensor inv = at::pow(r.theta, exps).reciprocal();
  if (r.type == "llama3") {
    const double old_len = static_cast<double>(r.original_max_position);
    const double low_wavelen = old_len / r.low_freq_factor, high_wavelen = old_len / r.high_freq_factor;
    const at::Tensor wavelen = inv.reciprocal() * (2.0 * M_PI);
    at::Tensor scaled = at::where(wavelen > low_wavelen, inv / r.factor, inv);
    const at::Tensor smooth = (wavelen.reciprocal() * old_len - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
    const at::Tensor smoothed = (1.0 - smooth) * scaled / r.factor + smooth * scaled;
    const at::Tensor medium = (wavelen < high_wavelen).logical_not().logical_and((wavelen > low_wavelen).logical_not());
    inv = at::where(medium, smoothed, scaled);
  }
  return inv;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Config

DecoderConfig DecoderConfig::from_json(const std::string& json_text, const std::string& origin) {
  const HfConfigReader r(json_text, origin);
  DecoderConfig c;
  c.model_type = r.str("model_type", "");
  if (std::find(kSupportedTypes.begin(), kSupportedTypes.end(), c.model_type) == kSupportedTypes.end()) {
    std::string list;
    for (const auto& t : kSupportedTypes) list += (list.empty() ? "" : ", ") + t;
    r.fail("model_type", "'" + c.model_type + "' is not a supported decoder (" + list + ")");
  }
  c.vocab_size = r.integer("vocab_size");
  c.hidden_size = r.integer("hidden_size");
  c.intermediate_size = r.integer("intermediate_size");
  c.num_layers = r.integer("num_hidden_layers");
  c.num_heads = r.integer("num_attention_heads");
  c.num_kv_heads = r.integer("num_key_value_heads", c.num_heads);
  c.head_dim = r.integer("head_dim", c.num_heads > 0 ? c.hidden_size / c.num_heads : 0);
  c.rms_norm_eps = r.number("rms_norm_eps", 1e-6);
  c.max_position_embeddings = r.integer("max_position_embeddings", 0);
  c.tie_word_embeddings = r.boolean("tie_word_embeddings", false);
  const bool qwen = c.model_type.rfind("qwen2", 0) == 0;
  c.qkv_bias = qwen ? true : r.boolean("attention_bias", false);
  if (r.boolean("mlp_bias", false)) r.fail("mlp_bias", "MLP biases are not supported");
  if (r.boolean("use_sliding_window", false)) r.fail("use_sliding_window", "sliding-window attention is not supported");
  const std::string act = r.str("hidden_act", "silu");
  if (act != "silu") r.fail("hidden_act", "'" + act + "' is not supported (silu)");
  c.bos_token_id = r.integer("bos_token_id", -1);
  c.eos_token_ids = r.int_list("eos_token_id");

  // RoPE: transformers 5 writes rope_parameters {rope_type, rope_theta, ...}; 4.x wrote
  // rope_theta plus an optional rope_scaling {type | rope_type, ...}.
  nlohmann::json rp = r.object("rope_parameters");
  std::string rp_field = "rope_parameters";
  if (rp.is_null()) {
    rp = r.object("rope_scaling");
    rp_field = "rope_scaling";
  }
  c.rope.theta = r.number("rope_theta", 10000.0);
  std::string type = "default";
  if (rp.is_object()) {
    if (rp.contains("rope_theta")) c.rope.theta = rp["rope_theta"].get<double>();
    type = rp.value("rope_type", rp.value("type", std::string("default")));
    if (rp.contains("mrope_section")) c.rope.mrope_section = rp["mrope_section"].get<std::vector<int64_t>>();
    if (type == "llama3") {
      c.rope.factor = rp.value("factor", 8.0);
      c.rope.low_freq_factor = rp.value("low_freq_factor", 1.0);
      c.rope.high_freq_factor = rp.value("high_freq_factor", 4.0);
      c.rope.original_max_position = rp.value("original_max_position_embeddings", int64_t{8192});
    }
  }
  if (type == "mrope") type = "default";  // Qwen2-VL 4.x spelling: default frequencies, sections
  if (type != "default" && type != "llama3")
    r.fail(rp_field, "rope type '" + type + "' is not supported (default, llama3, mrope)");
  c.rope.type = type;
  const std::string bad = c.check();
  if (!bad.empty()) throw Error("model", origin + ": " + bad);
  return c;
}

DecoderConfig DecoderConfig::from_file(const std::string& path) { return from_json(read_text_file(path), path); }

DecoderConfig DecoderConfig::llama3_8b() {
  DecoderConfig c;
  c.model_type = "llama";
  c.vocab_size = 128256;
  c.hidden_size = 4096;
  c.intermediate_size = 14336;
  c.num_layers = 32;
  c.num_heads = 32;
  c.num_kv_heads = 8;
  c.head_dim = 128;
  c.rms_norm_eps = 1e-5;
  c.rope.theta = 500000.0;
  c.max_position_embeddings = 8192;
  c.bos_token_id = 128000;
  c.eos_token_ids = {128001};
  return c;
}

std::string DecoderConfig::check() const {
  std::ostringstream e;
  if (vocab_size <= 0 || hidden_size <= 0 || intermediate_size <= 0 || num_layers <= 0 || num_heads <= 0 ||
      num_kv_heads <= 0 || head_dim <= 0)
    e << "sizes must be positive (vocab " << vocab_size << ", hidden " << hidden_size << ", intermediate "
      << intermediate_size << ", layers " << num_layers << ", heads " << num_heads << "/" << num_kv_heads
      << ", head_dim " << head_dim << ")";
  else if (num_heads % num_kv_heads != 0)
    e << "num_attention_heads " << num_heads << " is not a multiple of num_key_value_heads " << num_kv_heads;
  else if (head_dim % 2 != 0)
    e << "head_dim " << head_dim << " must be even for rotary embeddings";
  else if (!rope.mrope_section.empty()) {
    int64_t sum = 0;
    for (int64_t s : rope.mrope_section) sum += s;
    if (rope.mrope_section.size() != 3 || sum != head_dim / 2)
      e << "mrope_section must be 3 numbers summing to head_dim/2 = " << head_dim / 2;
  }
  return e.str();
}

// ---------------------------------------------------------------------------------------------
// Weights

DecoderLM::DecoderLM(DecoderConfig cfg, const Options& options) : cfg_(std::move(cfg)) { allocate(options); }

void DecoderLM::allocate(const Options& o) {
  const auto t = at::TensorOptions().dtype(o.dtype).device(o.device);
  const int64_t H = cfg_.hidden_size, I = cfg_.intermediate_size, D = cfg_.head_dim;
  const int64_t q = cfg_.num_heads * D, kv = cfg_.num_kv_heads * D;
  embed_ = at::empty({cfg_.vocab_size, H}, t);
  norm_ = at::empty({H}, t);
  layers_.resize(static_cast<size_t>(cfg_.num_layers));
  for (Layer& l : layers_) {
    l.input_norm = at::empty({H}, t);
    l.post_norm = at::empty({H}, t);
    l.q_w = at::empty({q, H}, t);
    l.k_w = at::empty({kv, H}, t);
    l.v_w = at::empty({kv, H}, t);
    l.o_w = at::empty({H, q}, t);
    if (cfg_.qkv_bias) {
      l.q_b = at::empty({q}, t);
      l.k_b = at::empty({kv}, t);
      l.v_b = at::empty({kv}, t);
    }
    l.gate_w = at::empty({I, H}, t);
    l.up_w = at::empty({I, H}, t);
    l.down_w = at::empty({H, I}, t);
  }
  lm_head_ = cfg_.tie_word_embeddings ? embed_ : at::empty({cfg_.vocab_size, H}, t);
  inv_freq_ = rope_inverse_frequencies(cfg_.rope, D).to(o.device);
}

template <typename Self, typename F>
void DecoderLM::for_each_parameter(Self& self, F&& f) {
  const std::string& pre = self.prefix_;
  f(pre + "embed_tokens.weight", self.embed_);
  f(pre + "norm.weight", self.norm_);
  for (size_t i = 0; i < self.layers_.size(); ++i) {
    auto& l = self.layers_[i];
    const std::string b = pre + "layers." + std::to_string(i) + ".";
    f(b + "input_layernorm.weight", l.input_norm);
    f(b + "post_attention_layernorm.weight", l.post_norm);
    f(b + "self_attn.q_proj.weight", l.q_w);
    f(b + "self_attn.k_proj.weight", l.k_w);
    f(b + "self_attn.v_proj.weight", l.v_w);
    f(b + "self_attn.o_proj.weight", l.o_w);
    if (l.q_b.defined()) {
      f(b + "self_attn.q_proj.bias", l.q_b);
      f(b + "self_attn.k_proj.bias", l.k_b);
      f(b + "self_attn.v_proj.bias", l.v_b);
    }
    f(b + "mlp.gate_proj.weight", l.gate_w);
    f(b + "mlp.up_proj.weight", l.up_w);
    f(b + "mlp.down_proj.weight", l.down_w);
  }
  if (self.lm_head_.defined() && !self.cfg_.tie_word_embeddings) f(self.head_name_, self.lm_head_);
}

std::map<std::string, at::Tensor> DecoderLM::named_parameters() const {
  std::map<std::string, at::Tensor> p;
  for_each_parameter(*this, [&p](const std::string& name, const at::Tensor& t) { p[name] = t; });
  return p;
}

int64_t DecoderLM::parameter_bytes() const {
  int64_t n = 0;
  for (const auto& kv : named_parameters()) n += kv.second.numel() * static_cast<int64_t>(kv.second.element_size());
  return n;
}

DecoderLM DecoderLM::load(const std::string& dir, const Options& options) { return load_impl(dir, options, false); }

DecoderLM DecoderLM::load_impl(const std::string& dir, const Options& options, bool dry_run) {
  DecoderLM lm(DecoderConfig::from_file(model_config_path(dir)), options);
  const safetensors::Checkpoint ckpt = open_checkpoint(dir);
  lm.prefix_ = find_prefix(ckpt, {"model.", "", "model.language_model.", "language_model.model."},
                           "embed_tokens.weight", dir);
  if (!lm.cfg_.tie_word_embeddings) {
    lm.head_name_.clear();
    for (const char* name : {"lm_head.weight", "language_model.lm_head.weight"})
      if (ckpt.contains(name)) lm.head_name_ = name;
    if (lm.head_name_.empty()) lm.lm_head_ = at::Tensor();  // a bare model: hidden states only
  }
  load_parameters(ckpt, lm.named_parameters(), "the decoder", dry_run);
  return lm;
}

void DecoderLM::check_checkpoint(const std::string& dir) { load_impl(dir, {at::kMeta, at::kFloat}, true); }

DecoderLM DecoderLM::random(const DecoderConfig& config, const Options& options, uint64_t seed) {
  const std::string bad = config.check();
  if (!bad.empty()) throw Error("model", "random decoder: " + bad);
  DecoderLM lm(config, options);
  fill_random(lm.named_parameters(), seed);
  return lm;
}

void DecoderLM::to(const at::Device& device) {
  for_each_parameter(*this, [&device](const std::string&, at::Tensor& t) { t = t.to(device); });
  inv_freq_ = inv_freq_.to(device);
  if (cfg_.tie_word_embeddings) lm_head_ = embed_;
}

KVCache DecoderLM::new_cache(int64_t batch, int64_t capacity) const {
  KVCache c;
  const auto t = embed_.options();
  for (int64_t i = 0; i < cfg_.num_layers; ++i) {
    c.k.push_back(at::empty({batch, capacity, cfg_.num_kv_heads, cfg_.head_dim}, t));
    c.v.push_back(at::empty({batch, capacity, cfg_.num_kv_heads, cfg_.head_dim}, t));
  }
  return c;
}

// ---------------------------------------------------------------------------------------------
// Forward

std::pair<at::Tensor, at::Tensor> DecoderLM::rope_cos_sin(const at::Tensor& positions) const {
  // freqs[..., j] = position * inv_freq[j] in fp32, as transformers computes them.
  at::Tensor freqs;
  const at::Tensor inv = inv_freq_;
  if (positions.dim() == 3) {  // [3, B, L]: M-RoPE, frequency pairs split into t/h/w sections
    at::Tensor all = positions.to(at::kFloat).unsqueeze(-1) * inv;  // [3, B, L, D/2]
    if (cfg_.rope.mrope_section.empty()) {
      freqs = all[0];
    } else {
      std::vector<at::Tensor> parts;
      int64_t at_col = 0;
      for (size_t s = 0; s < 3; ++s) {
        const int64_t n = cfg_.rope.mrope_section[s];
        parts.push_back(all[static_cast<int64_t>(s)].narrow(-1, at_col, n));
        at_col += n;
      }
      freqs = at::cat(parts, -1);
    }
  } else {
    freqs = positions.to(at::kFloat).unsqueeze(-1) * inv;  // [B, L, D/2]
  }
  const at::Tensor emb = at::cat({freqs, freqs}, -1).unsqueeze(2);  // [B, L, 1, D]
  return {emb.cos().to(embed_.scalar_type()), emb.sin().to(embed_.scalar_type())};
}

at::Tensor DecoderLM::embed(const at::Tensor& ids) const {
  XATTN_CHECK(ids.dim() == 2, "ids: expected [B, L], got ", shape_str(ids));
  // Ids from the host (a tokenizer) are checked there; ids already on the device (argmax of the
  // previous step) are trusted, so decoding never waits for the host.
  if (!ids.is_cuda() && ids.numel() > 0) {
    const at::Tensor c = ids.to(at::kLong);
    const int64_t lo = c.min().item<int64_t>(), hi = c.max().item<int64_t>();
    if (lo < 0 || hi >= cfg_.vocab_size)
      throw Error("model", "token id " + std::to_string(lo < 0 ? lo : hi) + " is outside the vocabulary [0, " +
                               std::to_string(cfg_.vocab_size) + ")");
  }
  return at::embedding(embed_, ids.to(embed_.device(), at::kLong));
}

DecoderLM::Output DecoderLM::forward(const at::Tensor& ids, const ForwardOptions& options) const {
  return forward_embeds(embed(ids), options);
}

DecoderLM::Output DecoderLM::forward_embeds(const at::Tensor& embeds, const ForwardOptions& o) const {
  XATTN_CHECK(embeds.dim() == 3 && embeds.size(2) == cfg_.hidden_size, "embeds: expected [B, L, ",
              cfg_.hidden_size, "], got ", shape_str(embeds));
  const int64_t B = embeds.size(0), L = embeds.size(1), n = cfg_.num_layers;
  const int64_t Hq = cfg_.num_heads, Hkv = cfg_.num_kv_heads, D = cfg_.head_dim;
  if (o.logits && !lm_head_.defined())
    throw Error("model", "this checkpoint has no lm_head: ask for hidden states (logits = false)");

  // Which hidden states, and how many layers they need.
  std::vector<std::pair<int, int>> wanted;  // (key, index in 0..n)
  int64_t layers_needed = o.logits ? n : 0;
  for (int key : o.hidden_states) {
    const int64_t idx = key < 0 ? n + 1 + key : key;
    if (idx < 0 || idx > n)
      throw Error("model", "hidden state " + std::to_string(key) + " does not exist (" + std::to_string(n + 1) +
                               " of them: embeddings and one per layer)");
    wanted.emplace_back(key, static_cast<int>(idx));
    layers_needed = std::max(layers_needed, idx);
  }
  KVCache* cache = o.cache;
  const int64_t past = cache ? cache->length : 0;
  if (cache) {
    layers_needed = n;  // every layer's keys must be stored
    XATTN_CHECK(static_cast<int64_t>(cache->k.size()) == n && cache->k[0].size(0) == B,
                "KV cache: made for another model or batch");
    if (past + L > cache->capacity())
      throw Error("model", "KV cache full: " + std::to_string(past) + " + " + std::to_string(L) + " positions > capacity " +
                               std::to_string(cache->capacity()));
  }

  at::Tensor pos = o.position_ids;
  if (!pos.defined()) {
    const int64_t base = past + (cache ? cache->rope_delta : 0);
    pos = at::arange(base, base + L, at::TensorOptions().dtype(at::kLong).device(embeds.device())).unsqueeze(0).expand({B, L});
  } else {
    pos = pos.to(embeds.device(), at::kLong);
    const bool ok2 = pos.dim() == 2 && pos.size(0) == B && pos.size(1) == L;
    const bool ok3 = pos.dim() == 3 && pos.size(0) == 3 && pos.size(1) == B && pos.size(2) == L;
    XATTN_CHECK(ok2 || ok3, "position_ids: expected [", B, ", ", L, "] or [3, ", B, ", ", L, "], got ", shape_str(pos));
  }
  const auto cs = rope_cos_sin(pos);
  const at::Tensor& cos = cs.first;
  const at::Tensor& sin = cs.second;
  auto rope = [&](const at::Tensor& x) {  // x: [B, L, H, D]
    const at::Tensor x1 = x.narrow(-1, 0, D / 2), x2 = x.narrow(-1, D / 2, D / 2);
    return x * cos + at::cat({-x2, x1}, -1) * sin;
  };
  auto rms = [&](const at::Tensor& x, const at::Tensor& w) {
    at::Tensor f = x.to(at::kFloat);
    f = f * at::rsqrt(f.pow(2).mean(-1, true) + cfg_.rms_norm_eps);
    return w * f.to(x.scalar_type());
  };

  Output out;
  at::Tensor x = embeds.to(embed_.scalar_type());
  attention::AttentionOptions aopts;
  aopts.causal = true;
  auto record = [&](int64_t idx) {  // x is hidden state idx (< n; n is the final norm's output)
    for (const auto& w : wanted)
      if (w.second == idx && idx < n) out.hidden_states[w.first] = x;
  };
  for (int64_t i = 0; i < layers_needed; ++i) {
    record(i);
    const Layer& l = layers_[static_cast<size_t>(i)];
    const at::Tensor h = rms(x, l.input_norm);
    const at::Tensor q = rope(at::linear(h, l.q_w, l.q_b).view({B, L, Hq, D}));
    at::Tensor k = rope(at::linear(h, l.k_w, l.k_b).view({B, L, Hkv, D}));
    at::Tensor v = at::linear(h, l.v_w, l.v_b).view({B, L, Hkv, D});
    if (cache) {
      cache->k[static_cast<size_t>(i)].narrow(1, past, L).copy_(k);
      cache->v[static_cast<size_t>(i)].narrow(1, past, L).copy_(v);
      k = cache->k[static_cast<size_t>(i)].narrow(1, 0, past + L);
      v = cache->v[static_cast<size_t>(i)].narrow(1, 0, past + L);
    }
    attention::AttentionSpec spec;
    spec.mode = "dense";
    if (o.attention_policy) spec = o.attention_policy(static_cast<int>(i));
    attention::AttentionStats stats;
    const at::Tensor a = attention::attention(q, k, v, spec, aopts, o.on_attention ? &stats : nullptr);
    if (o.on_attention) o.on_attention(static_cast<int>(i), stats);
    x = x + at::linear(a.reshape({B, L, Hq * D}), l.o_w);
    const at::Tensor g = rms(x, l.post_norm);
    x = x + at::linear(at::silu(at::linear(g, l.gate_w)) * at::linear(g, l.up_w), l.down_w);
  }
  record(layers_needed);
  const bool need_final = o.logits || std::any_of(wanted.begin(), wanted.end(), [&](const auto& w) { return w.second == n; });
  if (need_final) {
    const at::Tensor f = rms(x, norm_);
    for (const auto& w : wanted)
      if (w.second == n) out.hidden_states[w.first] = f;
    if (o.logits) out.logits = at::linear(o.last_position_logits ? f.narrow(1, L - 1, 1) : f, lm_head_).to(at::kFloat);
  }
  if (cache) cache->length += L;
  return out;
}

std::vector<int64_t> DecoderLM::generate(const std::vector<int64_t>& prompt, const GenerateOptions& g) const {
  if (prompt.empty()) throw Error("model", "generate: empty prompt");
  if (!lm_head_.defined()) throw Error("model", "generate: this checkpoint has no lm_head");
  const int64_t L = static_cast<int64_t>(prompt.size());
  const std::vector<int64_t> stops = g.stop_tokens.empty() ? cfg_.eos_token_ids : g.stop_tokens;
  KVCache cache = new_cache(1, L + std::max<int64_t>(g.max_new_tokens, 1));
  ForwardOptions f;
  f.cache = &cache;
  f.last_position_logits = true;
  if (g.position_ids.defined()) {
    f.position_ids = g.position_ids;
    // Text after the prompt continues from the largest prompt position (Qwen2-VL's rope_deltas).
    cache.rope_delta = g.position_ids.max().item<int64_t>() + 1 - L;
  }
  const auto ids_opts = at::TensorOptions().dtype(at::kLong);
  at::Tensor ids = at::tensor(prompt, ids_opts).unsqueeze(0);
  std::vector<int64_t> out;
  while (static_cast<int64_t>(out.size()) < g.max_new_tokens) {
    const Output o = forward(ids, f);
    f.position_ids = at::Tensor();
    const int64_t tok = o.logits[0][-1].argmax().item<int64_t>();
    out.push_back(tok);
    if (g.on_token && !g.on_token(tok)) break;
    if (std::find(stops.begin(), stops.end(), tok) != stops.end()) break;
    ids = at::full({1, 1}, tok, ids_opts);
  }
  return out;
}

}  // namespace xattn::text
