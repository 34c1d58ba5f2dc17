// Synthetic attention workloads with known structure, and quality metrics. Used by tests,
// benchmarks and threshold calibration. Seeded and deterministic (CPU generator).
//
//   auto w = xattn::attention::synthetic::video_like({});     // [video tokens || text tokens]
//   BlockMask m = estimate(w.q, w.k, cfg, w.opts);
//   double recall = mass_recall(m, exact_block_mass(w.q, w.k, m.block_size, w.opts));
//
// How structure is made: each head has a metric over token positions; q and k carry random
// Fourier features of the position under that metric, so q·k/sqrt(d) ≈ peak·exp(-|Δ|²/2)
// plus feature noise of order peak/sqrt(d). A spatial head's metric stretches time
// (same-frame neighbours), a temporal head's ignores time (same place in every frame), a
// global head's is wide. A few sink tokens and the text tokens draw every query a little.
// The peak logit grows with log(tokens) so that the neighbourhood outweighs the mass of the
// many distant tokens at any size.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/attention/xattention.h"
#include "core/config/config.h"

namespace xattn::attention::synthetic {

struct Workload {
  std::string name;
  at::Tensor q, k, v;                   // [B, L, H, D] (k, v: Hkv heads)
  AttentionOptions opts;                // causal, key lengths
  std::vector<std::string> head_kinds;  // one per query head
};

struct VideoConfig {
  int64_t batch = 1;
  int64_t frames = 6, height = 16, width = 24;  // latent token grid; tokens = T*H*W
  int64_t text_tokens = 32;                     // appended after the video tokens
  int64_t padded_text = 0;                      // extra text positions marked as padding (key_lengths)
  int64_t heads = 6;
  int64_t head_dim = 64;
  // Head kinds cycle spatial, temporal, global over the heads. Each kind has a neighbourhood
  // (radii in tokens and frames) and a peak margin: peak logit = log(tokens) + margin. A low
  // margin spreads a head's mass (diffuse heads), a high one concentrates it.
  // Defaults measured on the H100 machine (2026-11-26, configs/density/video-720p.yaml):
  // at 33x45x80 + 256 text tokens, tau 0.9 and stride 8 keep 35.0% of blocks overall
  // (spatial 17.7%, temporal 55.5%, global 31.7%), as the paper reports for HunyuanVideo
  // (34.4%). Smaller grids come out denser.
  double spatial_sigma = 1.5;        // height/width radius of spatial heads
  double spatial_time_sigma = 1.0;   // frame radius of spatial heads
  double spatial_margin = 3.0;
  double temporal_sigma = 2.0;       // height/width radius of temporal heads (any frame)
  double temporal_margin = 1.0;
  double global_sigma = 20.0;        // height/width radius of global heads
  double global_time_sigma = 10.0;   // frame radius of global heads
  double global_margin = -4.0;
  int64_t sink_tokens = 4;      // first video tokens that every query attends to a little
  double sink_gap = 3.0;        // sink logit = the head's peak - sink_gap
  double text_gap = 5.0;        // logit of video queries for text keys = the head's peak - text_gap
  int64_t seed = 0;

  template <class V>
  void fields(V& v) {
    namespace c = xattn::config;
    v.field("batch", batch, "batch size", c::at_least<int64_t>(1));
    v.field("frames", frames, "latent frames T", c::at_least<int64_t>(1));
    v.field("height", height, "latent height H (tokens)", c::at_least<int64_t>(1));
    v.field("width", width, "latent width W (tokens)", c::at_least<int64_t>(1));
    v.field("text_tokens", text_tokens, "valid text tokens after the video tokens", c::at_least<int64_t>(0));
    v.field("padded_text", padded_text, "padding positions after the text (excluded by key_lengths)",
            c::at_least<int64_t>(0));
    v.field("heads", heads, "attention heads (kinds cycle spatial, temporal, global)", c::at_least<int64_t>(1));
    v.field("head_dim", head_dim, "head dimension", c::at_least<int64_t>(8));
    v.field("spatial_sigma", spatial_sigma, "height/width radius of spatial heads (tokens)", c::range(0.1, 1e4));
    v.field("spatial_time_sigma", spatial_time_sigma, "frame radius of spatial heads", c::range(0.05, 1e4));
    v.field("spatial_margin", spatial_margin, "spatial heads: peak logit minus log(tokens)", c::range(-20.0, 50.0));
    v.field("temporal_sigma", temporal_sigma, "height/width radius of temporal heads (tokens)", c::range(0.1, 1e4));
    v.field("temporal_margin", temporal_margin, "temporal heads: peak logit minus log(tokens)", c::range(-20.0, 50.0));
    v.field("global_sigma", global_sigma, "height/width radius of global heads (tokens)", c::range(0.1, 1e4));
    v.field("global_time_sigma", global_time_sigma, "frame radius of global heads", c::range(0.05, 1e4));
    v.field("global_margin", global_margin, "global heads: peak logit minus log(tokens)", c::range(-20.0, 50.0));
    v.field("sink_tokens", sink_tokens, "first video tokens acting as attention sinks", c::at_least<int64_t>(0));
    v.field("sink_gap", sink_gap, "sink logit below the peak", c::range(-50.0, 50.0));
    v.field("text_gap", text_gap, "text-key logit of video queries below the peak", c::range(-50.0, 50.0));
    v.field("seed", seed, "random seed", c::at_least<int64_t>(0));
  }
};
// Generated in fp32 on the CPU (deterministic), then moved to `device`.
Workload video_like(const VideoConfig& cfg, const at::Device& device = at::kCPU);

struct LlmConfig {
  int64_t batch = 1;
  int64_t length = 4096;
  int64_t heads = 8, kv_heads = 2, head_dim = 64;
  // Defaults give ~18% density at 4K tokens (tau 0.9, stride 8); density falls with length
  // roughly as window/length.
  double window_sigma = 256.0;   // slash: local band width in tokens
  double peak_margin = 1.0;      // peak logit = log(length) + margin
  int64_t vertical_columns = 32; // vertical: key columns every query attends to (first is token 0)
  double vertical_gap = 2.0;     // column logit = peak - gap (alternating heads add 2 more)
  int64_t seed = 0;

  template <class V>
  void fields(V& v) {
    namespace c = xattn::config;
    v.field("batch", batch, "batch size", c::at_least<int64_t>(1));
    v.field("length", length, "tokens", c::at_least<int64_t>(1));
    v.field("heads", heads, "query heads", c::at_least<int64_t>(1));
    v.field("kv_heads", kv_heads, "key/value heads (divides heads)", c::at_least<int64_t>(1));
    v.field("head_dim", head_dim, "head dimension", c::at_least<int64_t>(8));
    v.field("window_sigma", window_sigma, "local band width (tokens)", c::range(0.1, 1e7));
    v.field("peak_margin", peak_margin, "peak logit minus log(length)", c::range(-20.0, 50.0));
    v.field("vertical_columns", vertical_columns, "global key columns (the first is token 0)", c::at_least<int64_t>(0));
    v.field("vertical_gap", vertical_gap, "column logit below the peak", c::range(-50.0, 50.0));
    v.field("seed", seed, "random seed", c::at_least<int64_t>(0));
  }
  std::string check() const { return heads % kv_heads == 0 ? "" : "heads must be a multiple of kv_heads"; }
};
// Causal vertical-slash patterns (local band + a few global columns), GQA.
Workload llm_like(const LlmConfig& cfg, const at::Device& device = at::kCPU);

// Independent N(0, 1) entries.
Workload random(int64_t batch, int64_t length, int64_t heads, int64_t kv_heads, int64_t head_dim, bool causal,
                uint64_t seed, const at::Device& device = at::kCPU);

// ---------------------------------------------------------------------------
// Metrics

// ||a - ref|| / ||ref|| in fp64.
double relative_l2(const at::Tensor& a, const at::Tensor& ref);

// The true attention mass of each block [B, H, Qb, Kb] (fp64): softmax probabilities summed
// over the block's keys and averaged over its valid query rows, so each block row sums to 1.
at::Tensor exact_block_mass(const at::Tensor& q, const at::Tensor& k, int64_t block_size,
                            const AttentionOptions& opts = {});

struct Recall {
  double overall = 0;
  at::Tensor per_head;  // fp64 [H]
};
// Share of the true mass that the kept blocks hold.
Recall mass_recall(const BlockMask& mask, const at::Tensor& exact_mass);

}  // namespace xattn::attention::synthetic
