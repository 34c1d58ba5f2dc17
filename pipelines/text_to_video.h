// Text-to-video with HunyuanVideo and the XAttention policy: load once, generate many.
//
//   #include "pipelines/text_to_video.h"
//   using namespace xattn::pipelines;
//   TextToVideo t2v = TextToVideo::load("HunyuanVideo", {at::kCUDA, at::kBFloat16});   // or TextToVideo::tiny()
//   GenerateConfig cfg;                      // 129 x 720 x 1280, 50 steps, tau 0.9 after 5 dense steps
//   cfg.prompt = "A cat walks on the grass, realistic style.";
//   GenerateResult r = t2v.generate(cfg, [](const xattn::ProgressEvent& e) { return !stop_requested; });
//   // r.frames: uint8 [T, H, W, 3]; r.attention: density and time per step and layer
//
// A model folder is diffusers' HunyuanVideo layout: model_index.json, transformer/, vae/,
// text_encoder/ (LLaMA), text_encoder_2/ (CLIP), tokenizer/, tokenizer_2/, scheduler/. Every
// file is checked before any weight is read. The text encoders leave the GPU after encoding.
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/config/config.h"
#include "core/progress.h"
#include "pipelines/attention_policy.h"
#include "pipelines/hunyuan/text_encoder.h"
#include "pipelines/hunyuan/transformer.h"
#include "pipelines/hunyuan/vae.h"

namespace xattn::pipelines {

struct VaeTilingConfig {
  bool temporal = true;
  bool spatial = false;  // 256-px tiles every 192 px; needed for 720p on one GPU
  template <class V>
  void fields(V& v) {
    v.field("temporal", temporal, "decode latent windows of 5 frames every 3 (the published default)");
    v.field("spatial", spatial, "decode 256-pixel tiles every 192 pixels (less memory at 720p)");
  }
};

// One generation (YAML: run.yaml beside every video).
struct GenerateConfig {
  std::string prompt;
  int frames = 129;       // 4k + 1
  int height = 720;       // multiple of 16
  int width = 1280;       // multiple of 16
  int steps = 50;
  int64_t seed = 0;
  double guidance = 6.0;  // embedded guidance scale
  std::string negative_prompt;  // with true_cfg_scale > 1: classifier-free guidance against it
  double true_cfg_scale = 1.0;  // 1: off (the published default); > 1 doubles the transformer passes
  double shift = 7.0;     // flow-matching shift
  double fps = 24.0;
  AttentionPolicy attention;
  VaeTilingConfig vae;

  template <class V>
  void fields(V& v) {
    namespace c = xattn::config;
    v.field("prompt", prompt, "what the video shows");
    v.field("frames", frames, "frames to generate (4k + 1)", c::at_least(1));
    v.field("height", height, "pixels, a multiple of 16", c::at_least(16));
    v.field("width", width, "pixels, a multiple of 16", c::at_least(16));
    v.field("steps", steps, "denoising steps", c::at_least(1));
    v.field("seed", seed, "seed of the initial noise");
    v.field("guidance", guidance, "embedded guidance scale", c::range(0.0, 100.0));
    v.field("negative_prompt", negative_prompt, "what the video should not show (needs true_cfg_scale > 1)");
    v.field("true_cfg_scale", true_cfg_scale, "true classifier-free guidance scale; 1 = off", c::range(1.0, 100.0));
    v.field("shift", shift, "flow-matching shift", c::range(0.001, 100.0));
    v.field("fps", fps, "frame rate of the written video", c::range(1.0, 240.0));
    v.field("attention", attention, "attention policy (dense warm-up, tau, per-layer overrides)");
    v.field("vae", vae, "VAE decode tiling");
  }
  std::string check() const;  // frames 4k+1, sizes multiples of 16, a prompt
};

struct StageTimes {
  double load_s = 0, text_s = 0, denoise_s = 0, vae_s = 0, total_s = 0;
};

struct GenerateResult {
  at::Tensor frames;   // uint8 [T, H, W, 3] on the CPU
  at::Tensor latents;  // final latents [1, 16, T', H/8, W/8] (fp32, CPU)
  StageTimes times;
  std::vector<double> step_s;                   // wall time per denoising step
  std::vector<LayerAttentionStat> attention;    // per step and layer
  double mean_density = 1.0;                    // over sparse attention calls (1 when all dense)
  double attention_s = 0;                       // time inside attention calls
  int64_t video_tokens = 0, text_tokens = 0;    // of the joint attention
};

struct TextToVideoOptions {
  at::Device device = at::kCPU;
  at::ScalarType dtype = at::kFloat;
  bool offload_text_encoders = true;  // keep them on the CPU between encodings (GPU runs)
  bool time_attention = true;         // synchronise around attention calls to time them
};

class TextToVideo {
 public:
  using Options = TextToVideoOptions;

  // Checks the folder layout and every config first, then loads (progress: one event per part).
  static TextToVideo load(const std::string& dir, const Options& options, const ProgressCallback& progress = {});
  // The embedded tiny model: seeded random weights in HunyuanVideo's architecture, small widths,
  // with small byte-level tokenizers; renders noise-like video quickly on a CPU.
  static TextToVideo tiny(const Options& options = {});
  // Sizes that suit the tiny model on a CPU (17 frames, 128 x 128, 8 steps).
  static void apply_tiny_defaults(GenerateConfig& cfg);

  GenerateResult generate(const GenerateConfig& config, const ProgressCallback& progress = {});

  const hunyuan::Transformer& transformer() const { return *dit_; }
  const std::string& name() const { return name_; }

 private:
  TextToVideo() = default;
  Options opt_;
  std::string name_;
  std::unique_ptr<hunyuan::TextEncoder> text_;
  std::unique_ptr<hunyuan::Transformer> dit_;
  std::unique_ptr<hunyuan::VaeDecoder> vae_;
  double load_s_ = 0;
};

}  // namespace xattn::pipelines
