// Decoder-only language models of the LLaMA and Qwen2 families (LLaMA-3 as HunyuanVideo's text
// encoder, Qwen2 / Qwen2-VL as the video-QA language model), read from Hugging Face checkpoints
// as published: config.json plus (sharded) safetensors with their key names.
//
//   using namespace xattn::text;
//   DecoderLM lm = DecoderLM::load("HunyuanVideo/text_encoder", {at::kCUDA, at::kBFloat16});
//   DecoderLM::ForwardOptions f;
//   f.hidden_states = {-3};              // HF hidden_states[-3]: the output of layer n-3
//   f.logits = false;                    // layers past the last one asked for are skipped
//   at::Tensor h = lm.forward(ids, f).hidden_states.at(-3);   // [B, L, hidden]
//
//   GenerateOptions g;                   // greedy, stops at the config's eos ids
//   g.max_new_tokens = 64;
//   std::vector<int64_t> answer = lm.generate(prompt_ids, g);
//
// Layer by layer: embeddings, RMSNorm, RoPE (default, llama3 scaling, or Qwen2-VL's M-RoPE with
// [temporal, height, width] sections), GQA attention through xattn::attention (dense or
// XAttention per layer, chosen by a policy callback), SwiGLU MLP, optional q/k/v biases, tied or
// untied head, KV cache. Batches are right-padded: causal attention keeps padding out of every
// valid position, so no mask is needed.
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/attention/xattention.h"
#include "pipelines/text/model_options.h"

namespace xattn::text {

struct RopeConfig {
  std::string type = "default";        // default | llama3
  double theta = 10000.0;
  // llama3 frequency scaling
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position = 8192;
  // Qwen2-VL M-RoPE: rotary frequency pairs given to the temporal, height and width positions
  // (sums to head_dim / 2); empty for 1-D positions.
  std::vector<int64_t> mrope_section;
};

struct DecoderConfig {
  std::string model_type;  // llama, qwen2, qwen2_vl, qwen2_vl_text, ...
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  double rms_norm_eps = 1e-6;
  RopeConfig rope;
  bool qkv_bias = false;  // Qwen2 family: always; LLaMA: attention_bias
  bool tie_word_embeddings = false;
  int64_t max_position_embeddings = 0;
  int64_t bos_token_id = -1;
  std::vector<int64_t> eos_token_ids;

  // config.json as transformers writes it (4.x: rope_theta + rope_scaling; 5.x: rope_parameters),
  // flat or with the text model under "text_config". Throws naming the file and the field.
  static DecoderConfig from_json(const std::string& json_text, const std::string& origin = "config.json");
  static DecoderConfig from_file(const std::string& path);
  // The published LLaMA-3-8B shape (32 layers, 4096 wide, 32/8 heads, 14336 MLP, 128256 tokens).
  static DecoderConfig llama3_8b();
  std::string check() const;  // "" when consistent
};

// Keys and values of every layer for incremental decoding.
struct KVCache {
  std::vector<at::Tensor> k, v;  // per layer [B, capacity, Hkv, D]
  int64_t length = 0;            // positions filled
  int64_t capacity() const { return k.empty() ? 0 : k[0].size(1); }
  // M-RoPE: the next text position is length + rope_delta (Qwen2-VL's rope_deltas).
  int64_t rope_delta = 0;
};

struct GenerateOptions {
  int64_t max_new_tokens = 32;
  std::vector<int64_t> stop_tokens;  // default: the config's eos ids
  at::Tensor position_ids;           // optional prompt positions [1, L] or M-RoPE [3, 1, L]
  // Called with each new token; return false to stop (cancel).
  std::function<bool(int64_t token)> on_token;
};

struct DecoderForwardOptions {
  // Positions: int [B, L], or [3, B, L] (temporal, height, width) for M-RoPE; default
  // cache length + 0..L-1 for every row.
  at::Tensor position_ids;
  KVCache* cache = nullptr;  // keys/values are appended; queries attend to the whole cache
  // Indices into Hugging Face's hidden_states tuple: 0 = embeddings, i = output of layer i-1,
  // num_layers = the final norm's output; negative counts from the end (-1 = final norm).
  std::vector<int> hidden_states;
  bool logits = true;
  bool last_position_logits = false;  // logits of the last position only ([B, 1, vocab])
  // Per-layer attention policy (dense when empty) and per-layer statistics.
  std::function<attention::AttentionSpec(int layer)> attention_policy;
  std::function<void(int layer, const attention::AttentionStats&)> on_attention;
};

class DecoderLM {
 public:
  using Options = ModelOptions;
  using ForwardOptions = DecoderForwardOptions;

  // A folder with config.json and model.safetensors or model.safetensors.index.json + shards.
  // The text model's keys are found under model., model.language_model., language_model.model. or
  // no prefix (a bare LlamaModel such as HunyuanVideo's text_encoder); other tensors in the
  // checkpoint (a vision tower) are ignored. A missing or misshaped tensor fails with its key
  // and both shapes.
  static DecoderLM load(const std::string& dir, const Options& options = {});
  // The same checks as load() (config, key prefix, every tensor's name and shape) without reading
  // any weight: cheap, for validating a model folder before heavy work.
  static void check_checkpoint(const std::string& dir);
  // Random weights (normal, std 0.02; norms 1) for benchmarks and tests.
  static DecoderLM random(const DecoderConfig& config, const Options& options = {}, uint64_t seed = 0);

  const DecoderConfig& config() const { return cfg_; }
  bool has_lm_head() const { return lm_head_.defined(); }
  // Published names (with the prefix of the checkpoint it came from) -> parameters.
  std::map<std::string, at::Tensor> named_parameters() const;
  int64_t parameter_bytes() const;

  KVCache new_cache(int64_t batch, int64_t capacity) const;
  // Moves every weight to `device` (e.g. to the CPU while a video model runs).
  void to(const at::Device& device);

  struct Output {
    at::Tensor logits;                      // float [B, L or 1, vocab] when asked for
    std::map<int, at::Tensor> hidden_states;  // keyed as asked (negative keys stay negative)
  };
  // ids: int [B, L]. Runs only as many layers as the outputs need.
  Output forward(const at::Tensor& ids, const ForwardOptions& options = {}) const;
  // The same from input embeddings [B, L, hidden] (vision tokens already in place).
  Output forward_embeds(const at::Tensor& embeds, const ForwardOptions& options = {}) const;
  at::Tensor embed(const at::Tensor& ids) const;  // [B, L] -> [B, L, hidden]

  // Greedy decoding of one prompt (ids [L] ) with a KV cache; returns the new tokens, the stop
  // token included when one ended it.
  std::vector<int64_t> generate(const std::vector<int64_t>& prompt, const GenerateOptions& options = {}) const;

 private:
  struct Layer {
    at::Tensor input_norm, q_w, q_b, k_w, k_b, v_w, v_b, o_w, post_norm, gate_w, up_w, down_w;
  };
  DecoderLM(DecoderConfig cfg, const Options& options);
  static DecoderLM load_impl(const std::string& dir, const Options& options, bool dry_run);
  // Calls f(checkpoint name, tensor) for every weight (the one list behind named_parameters and
  // to()); Self is DecoderLM or const DecoderLM.
  template <typename Self, typename F>
  static void for_each_parameter(Self& self, F&& f);
  void allocate(const Options& options);
  // cos and sin [B, L, 1, D] in the model dtype for positions [B, L] or [3, B, L].
  std::pair<at::Tensor, at::Tensor> rope_cos_sin(const at::Tensor& positions) const;

  DecoderConfig cfg_;
  std::string prefix_ = "model.";
  std::string head_name_ = "lm_head.weight";
  at::Tensor inv_freq_;  // float [D/2] on the device
  at::Tensor embed_, norm_, lm_head_;
  std::vector<Layer> layers_;
};

}  // namespace xattn::text
