// `xattn bench t2v-step`: one HunyuanVideo denoising step at full size (24 x 128 heads, 20 + 40
// blocks, random bf16 weights) on 720 x 1280 x 129 frames (118,800 video + 256 text tokens), dense
// (cuDNN through LibTorch SDPA) against XAttention at a set density, with the attention share and
// peak memory of each; then one tiled VAE decode of the same latents.
#pragma once

#include <string>

#include "core/progress.h"
#include "eval/report.h"

namespace xattn::eval {

struct T2vBenchConfig {
  int frames = 129, height = 720, width = 1280;
  int text_tokens = 256;
  std::string policy;         // AttentionPolicy YAML for the sparse step; empty: top-ratio 35%
  double top_ratio = 0.35;
  bool vae = true;            // also time one spatially + temporally tiled VAE decode
  int layers = -1;            // dual and single blocks (-1: the published 20 and 40), for quick runs
};

Table run_t2v_bench(const T2vBenchConfig& config, const ProgressCallback& progress = {});

}  // namespace xattn::eval
