// CLIP's text tower (ViT-L/14's as HunyuanVideo's text_encoder_2 ships it, CLIPTextModel key
// names): token + position embeddings, pre-LayerNorm blocks with causal self-attention and a
// QuickGELU MLP, a final LayerNorm, and the pooled output at the end-of-text position.
//
//   auto clip = xattn::text::ClipTextEncoder::load("HunyuanVideo/text_encoder_2", {at::kCUDA, at::kHalf});
//   auto tok = xattn::text::ClipTokenizer::from_dir("HunyuanVideo/tokenizer_2");
//   at::Tensor ids = at::tensor(tok.encode_padded(prompt).ids).to(at::kLong).unsqueeze(0);
//   at::Tensor pooled = clip.forward(ids).pooled;   // [1, 768]
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <string>
#include <vector>

#include "pipelines/text/model_options.h"

namespace xattn::text {

struct ClipTextConfig {
  int64_t vocab_size = 49408;
  int64_t hidden_size = 768;
  int64_t intermediate_size = 3072;
  int64_t num_layers = 12;
  int64_t num_heads = 12;
  int64_t max_position_embeddings = 77;
  double layer_norm_eps = 1e-5;
  std::string hidden_act = "quick_gelu";  // quick_gelu | gelu
  // 2 (the original configs' value) means "the highest id in the row is the end of text", as
  // CLIP's own pooling does; any other value is searched for.
  int64_t eos_token_id = 2;

  // A CLIPTextConfig's config.json, or a full CLIPConfig (its text_config).
  static ClipTextConfig from_json(const std::string& json_text, const std::string& origin = "config.json");
  static ClipTextConfig from_file(const std::string& path);
  std::string check() const;
};

class ClipTextEncoder {
 public:
  using Options = ModelOptions;
  // A folder with config.json and safetensors (keys text_model.*). A missing or misshaped tensor
  // fails with its key and both shapes.
  static ClipTextEncoder load(const std::string& dir, const Options& options = {});
  static void check_checkpoint(const std::string& dir);  // load()'s checks without reading weights
  static ClipTextEncoder random(const ClipTextConfig& config, const Options& options = {}, uint64_t seed = 0);

  const ClipTextConfig& config() const { return cfg_; }
  std::map<std::string, at::Tensor> named_parameters() const;
  void to(const at::Device& device);  // moves every weight

  struct Output {
    at::Tensor last_hidden_state;           // [B, L, hidden] after the final LayerNorm
    at::Tensor pooled;                      // [B, hidden]: last_hidden_state at each row's end of text
    std::vector<at::Tensor> hidden_states;  // when asked: embeddings, then each layer's output
  };
  // ids: int [B, L], L <= max_position_embeddings.
  Output forward(const at::Tensor& ids, bool all_hidden_states = false) const;

 private:
  struct Layer {
    at::Tensor ln1_w, ln1_b, q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b, ln2_w, ln2_b, fc1_w, fc1_b, fc2_w, fc2_b;
  };
  ClipTextEncoder(ClipTextConfig cfg, const Options& options);
  static ClipTextEncoder load_impl(const std::string& dir, const Options& options, bool dry_run);
  // Calls f(checkpoint name, tensor) for every weight (the one list behind named_parameters and
  // to()); Self is ClipTextEncoder or const ClipTextEncoder.
  template <typename Self, typename F>
  static void for_each_parameter(Self& self, F&& f);
  ClipTextConfig cfg_;
  std::string prefix_ = "text_model.";
  at::Tensor token_embedding_, position_embedding_, final_ln_w_, final_ln_b_;
  std::vector<Layer> layers_;
};

}  // namespace xattn::text
