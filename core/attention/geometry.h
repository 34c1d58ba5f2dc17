// Internal: input checks and the block geometry shared by estimate, selection and the
// attention references (which blocks can be computed, which are forced).
#pragma once

#include <ATen/ATen.h>

#include "core/attention/xattention.h"

namespace xattn::attention {

// Validated shapes of q [B, Lq, Hq, D], k [B, Lk, Hkv, D], v [B, Lk, Hkv, Dv].
struct Shapes {
  int64_t batch = 0, q_len = 0, k_len = 0, q_heads = 0, kv_heads = 0, head_dim = 0, v_dim = 0;
  bool causal = false;
  // v may be undefined (scoring only). Throws xattn::Error naming the tensor and shapes.
  static Shapes check(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const AttentionOptions& opts);
};

// fp64 for fp64 inputs, else fp32.
at::ScalarType compute_type(const at::Tensor& q);

struct Geometry {
  int64_t batch = 0, q_len = 0, k_len = 0, block = 0, q_blocks = 0, k_blocks = 0;
  int64_t offset = 0;  // causal: query i is at absolute position i + offset (= Lk - Lq)
  bool causal = false;
  std::vector<int64_t> key_lengths;  // per batch (k_len when not given)

  static Geometry make(int64_t batch, int64_t q_len, int64_t k_len, int64_t block, const AttentionOptions& opts);
  int64_t key_length(int64_t b) const { return key_lengths[static_cast<size_t>(b)]; }
  // bool [B, 1, Qb, Kb]: the block holds at least one (query, key) pair that may attend.
  at::Tensor allowed_blocks(const at::Device& device) const;
  // bool [B, 1, Qb, Kb]: causal sink (key block 0) and diagonal blocks (those holding the
  // absolute positions of the row's first to last query). Empty when not causal.
  at::Tensor forced_blocks(const at::Device& device, bool sink, bool diagonal) const;
};

// Sets logits to -inf where `keep` (bool, broadcastable) is false, in place. Materialises
// the mask at full size first: broadcasting element-wise ops are 10-20x slower than
// contiguous ones in LibTorch 1.13's CPU kernels.
void mask_logits_(at::Tensor& logits, const at::Tensor& keep);

}  // namespace xattn::attention
