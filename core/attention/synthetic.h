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
  // Head kinds cycle spatial, temporal, global over the heads.
  double spatial_sigma = 1.5;   // tokens (height/width) for spatial heads
  double temporal_sigma = 0.7;  // tokens for temporal heads (same place, any frame)
  double global_sigma = 8.0;    // tokens for global heads
  double peak_margin = 4.5;     // peak logit = log(tokens) + margin
  int64_t sink_tokens = 4;      // first video tokens that every query attends to a little
  double sink_gap = 3.0;        // sink logit = peak - sink_gap
  double text_gap = 5.0;        // logit of video queries for text keys = peak - text_gap
  uint64_t seed = 0;
  at::ScalarType dtype = at::kFloat;
};
Workload video_like(const VideoConfig& cfg);

struct LlmConfig {
  int64_t batch = 1;
  int64_t length = 4096;
  int64_t heads = 8, kv_heads = 2, head_dim = 64;
  double window_sigma = 24.0;    // slash: local band width in tokens
  double peak_margin = 4.0;      // peak logit = log(length) + margin
  int64_t vertical_columns = 12; // vertical: key columns every query attends to (first is token 0)
  double vertical_gap = 2.0;     // column logit = peak - gap (alternating heads add 2 more)
  uint64_t seed = 0;
  at::ScalarType dtype = at::kFloat;
};
// Causal vertical-slash patterns (local band + a few global columns), GQA.
Workload llm_like(const LlmConfig& cfg);

// Independent N(0, 1) entries.
Workload random(int64_t batch, int64_t length, int64_t heads, int64_t kv_heads, int64_t head_dim, bool causal,
                uint64_t seed, at::ScalarType dtype = at::kFloat);

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
