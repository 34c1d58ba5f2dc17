// HunyuanVideo's causal 3-D VAE, decoder side (diffusers' AutoencoderKLHunyuanVideo: vae/config.json
// and the decoder.* / post_quant_conv.* tensors of its safetensors): causal 3-D convolutions
// (replicate padding, two frames in front), ResNet blocks, a mid-block attention in which frame i
// sees frames <= i, up blocks that upsample the first frame only in space, and the published tiled
// decode: latent windows of 5 frames every 3 blended over 4 output frames, and optionally 256-px
// spatial tiles every 192 px blended over 64.
//
//   auto vae = xattn::hunyuan::VaeDecoder::load("HunyuanVideo/vae", {at::kCUDA, at::kBFloat16});
//   at::Tensor video = vae.decode(latents, {});   // [B, 3, 4(T-1)+1, 8h, 8w] in [-1, 1]
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "core/progress.h"
#include "pipelines/hunyuan/modules.h"

namespace xattn::hunyuan {

struct VaeConfig {
  int64_t latent_channels = 16;
  int64_t out_channels = 3;
  std::vector<int64_t> block_out_channels = {128, 256, 512, 512};
  int64_t layers_per_block = 2;
  int64_t norm_num_groups = 32;
  double scaling_factor = 0.476986;
  int64_t spatial_compression_ratio = 8;
  int64_t temporal_compression_ratio = 4;
  bool mid_block_add_attention = true;

  static VaeConfig from_json(const std::string& json_text, const std::string& origin = "config.json");
  static VaeConfig from_file(const std::string& path);
  std::string to_json() const;
  std::string check() const;
};

struct VaeTiling {
  bool temporal = true;   // diffusers' default (use_framewise_decoding)
  bool spatial = false;   // enable_tiling(): needed for 720p on one GPU
  int64_t tile_sample_min_size = 256, tile_sample_stride = 192;
  int64_t tile_sample_min_frames = 16, tile_sample_stride_frames = 12;
};

class VaeDecoder {
 public:
  static VaeDecoder load(const std::string& dir, const ModelOptions& options = {});
  static void check_checkpoint(const std::string& dir);  // load()'s checks without reading weights
  static VaeDecoder random(const VaeConfig& config, const ModelOptions& options = {}, uint64_t seed = 0);

  const VaeConfig& config() const { return cfg_; }
  Params named_parameters() const;

  // Model latents [B, C, T, h, w] (divided by scaling_factor here) -> video [B, 3, 4(T-1)+1, 8h, 8w]
  // in about [-1, 1]. Progress counts decoded tiles.
  at::Tensor decode(const at::Tensor& latents, const VaeTiling& tiling = {}, const ProgressCallback& progress = {}) const;
  // One window through post_quant_conv and the decoder, untiled (scaled latents).
  at::Tensor decode_window(const at::Tensor& z) const;

 private:
  struct Conv {  // causal 3-D convolution (or a plain 1x1x1 one)
    at::Tensor w, b;
    at::Tensor operator()(const at::Tensor& x) const;
  };
  struct Norm {
    at::Tensor w, b;
  };
  struct Resnet {
    Norm norm1, norm2;
    Conv conv1, conv2, shortcut;
  };
  struct UpBlock {
    std::vector<Resnet> resnets;
    Conv upsample;                      // undefined w: no upsampler
    int64_t time_factor = 1;
  };
  VaeDecoder(VaeConfig cfg, const ModelOptions& options);
  at::Tensor resnet(const Resnet& r, const at::Tensor& x) const;
  at::Tensor mid_attention(const at::Tensor& x) const;
  at::Tensor spatial_tiled(const at::Tensor& z, const VaeTiling& t, Progress* p) const;

  VaeConfig cfg_;
  Conv post_quant_, conv_in_, conv_out_;
  Resnet mid0_, mid1_;
  Norm attn_norm_, norm_out_;
  Linear attn_q_, attn_k_, attn_v_, attn_out_;
  std::vector<UpBlock> up_;
};

}  // namespace xattn::hunyuan
