// HunyuanVideo's diffusion transformer (diffusers' HunyuanVideoTransformer3DModel, key names as
// published in transformer/diffusion_pytorch_model*.safetensors): patch embedding, timestep /
// guidance / pooled-text embeddings, the token refiner, dual-stream then single-stream blocks
// with QK RMSNorm and 3-D RoPE on the video tokens, the final modulated norm and unpatchify.
// Spec: ../shared/reference/hunyuan-video.md.
//
//   auto dit = xattn::hunyuan::Transformer::load("HunyuanVideo/transformer", {at::kCUDA, at::kBFloat16});
//   xattn::hunyuan::TransformerInputs in{latents, t, text_states, text_mask, pooled, guidance};
//   at::Tensor v = dit.forward(in, attend);   // velocity [B, 16, T, H, W]
//
// Joint attention runs over [video tokens ‖ valid text tokens]: text beyond the longest valid
// prompt is dropped, and shorter prompts in a batch mask their padding as keys (key_lengths),
// which is exactly diffusers' mask for every video token. Each dual / single block calls the
// `attend` hook (dense when empty), so a policy can choose dense or XAttention per layer and step.
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <string>
#include <vector>

#include "core/attention/xattention.h"
#include "pipelines/attention_policy.h"
#include "pipelines/hunyuan/modules.h"

namespace xattn::hunyuan {

struct TransformerConfig {
  int64_t in_channels = 16;
  int64_t out_channels = 16;
  int64_t num_heads = 24;
  int64_t head_dim = 128;
  int64_t num_layers = 20;         // dual-stream blocks
  int64_t num_single_layers = 40;
  int64_t num_refiner_layers = 2;
  double mlp_ratio = 4.0;
  int64_t patch_size = 2;
  int64_t patch_size_t = 1;
  bool guidance_embeds = true;
  int64_t text_embed_dim = 4096;
  int64_t pooled_projection_dim = 768;
  double rope_theta = 256.0;
  std::vector<int64_t> rope_axes_dim = {16, 56, 56};

  int64_t inner_dim() const { return num_heads * head_dim; }
  // diffusers' transformer/config.json; absent fields keep the published defaults.
  static TransformerConfig from_json(const std::string& json_text, const std::string& origin = "config.json");
  static TransformerConfig from_file(const std::string& path);
  std::string to_json() const;
  std::string check() const;
};

struct TransformerInputs {
  at::Tensor latents;      // [B, C, T, H, W]
  at::Tensor timestep;     // [B], t in [0, 1000]
  at::Tensor text_states;  // [B, Lt, text_embed_dim] (LLM hidden states)
  at::Tensor text_mask;    // [B, Lt], 1 for valid tokens (right-padded); undefined: all valid
  at::Tensor pooled;       // [B, pooled_projection_dim] (CLIP pooled output)
  at::Tensor guidance;     // [B] embedded guidance * 1000 (when guidance_embeds)
};

// q [B, L, H, D], k/v [B, L, H, D] -> [B, L, H, D]
using AttentionFn = std::function<at::Tensor(const pipelines::LayerId&, const at::Tensor&, const at::Tensor&,
                                             const at::Tensor&, const attention::AttentionOptions&)>;

class Transformer {
 public:
  // A diffusers transformer/ folder (config.json + diffusion_pytorch_model*.safetensors).
  static Transformer load(const std::string& dir, const ModelOptions& options = {});
  static void check_checkpoint(const std::string& dir);  // load()'s checks without reading weights
  static Transformer random(const TransformerConfig& config, const ModelOptions& options = {}, uint64_t seed = 0);

  const TransformerConfig& config() const { return cfg_; }
  Params named_parameters() const;
  int64_t parameter_bytes() const;

  at::Tensor forward(const TransformerInputs& inputs, const AttentionFn& attend = {}) const;

  // RoPE tables for a latent grid: cos, sin [T'*H'*W', head_dim] in fp32 (w fastest).
  std::pair<at::Tensor, at::Tensor> rope(int64_t t, int64_t h, int64_t w, const at::Device& device) const;

 private:
  struct RefinerBlock {
    at::Tensor norm1_w, norm1_b, norm2_w, norm2_b;
    Linear q, k, v, out, ff_in, ff_out, ada;
  };
  struct DualBlock {
    Linear norm1, norm1_ctx, q, k, v, add_q, add_k, add_v, out, add_out, ff_in, ff_out, ffc_in, ffc_out;
    at::Tensor norm_q, norm_k, norm_added_q, norm_added_k;
  };
  struct SingleBlock {
    Linear norm, q, k, v, proj_mlp, proj_out;
    at::Tensor norm_q, norm_k;
  };
  Transformer(TransformerConfig cfg, const ModelOptions& options);
  // counts: valid tokens per prompt, on the CPU (read without a device round trip).
  at::Tensor refine(const at::Tensor& states, const at::Tensor& mask, const at::Tensor& counts,
                    const at::Tensor& timestep) const;

  TransformerConfig cfg_;
  at::Tensor patch_w_, patch_b_;
  Linear time_1_, time_2_, guid_1_, guid_2_, text_1_, text_2_;
  Linear ctx_in_, ctx_time_1_, ctx_time_2_, ctx_text_1_, ctx_text_2_;
  std::vector<RefinerBlock> refiner_;
  std::vector<DualBlock> dual_;
  std::vector<SingleBlock> single_;
  Linear norm_out_, proj_out_;
};

}  // namespace xattn::hunyuan
