// Internal: binds tensors to the CUDA kernels in kernels/. Without a CUDA build these say
// "unsupported" and the ATen reference runs.
#pragma once

#include <ATen/ATen.h>

#include <string>

#include "core/attention/xattention.h"

namespace xattn::attention::cuda {

#ifdef XATTN_WITH_CUDA
// Whether the kernels handle these inputs; `why` says why not.
bool supports_estimate(const at::Tensor& q, const at::Tensor& k, int64_t stride, int64_t block_size, std::string* why);
at::Tensor antidiagonal_scores(const at::Tensor& q, const at::Tensor& k, int64_t stride, int64_t block_size,
                               const AttentionOptions& opts);
BlockMask select(const at::Tensor& scores, const XAttentionConfig& cfg, int64_t q_len, int64_t k_len,
                 const AttentionOptions& opts);
// antidiagonal_scores then select, as one kernels::estimate_blocks call (on Hopper the split
// scoring launch's finish and the selection share a kernel; *fused, if given, says whether they did).
BlockMask estimate(const at::Tensor& q, const at::Tensor& k, const XAttentionConfig& cfg,
                   const AttentionOptions& opts, bool* fused = nullptr);
bool supports_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const BlockMask& mask,
                        std::string* why);
AttentionOutput block_sparse_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                       const BlockMask& mask, const AttentionOptions& opts, bool return_lse);
// Dense attention on the GPU: LibTorch's scaled_dot_product_attention (cuDNN / FlashAttention)
// where its semantics equal ours — same head count for q and k, no key lengths, no LSE, causal
// only with Lq == Lk (SDPA aligns the causal mask to the top-left corner, we to the bottom-right)
// — else our block-sparse kernel with every computable block kept. False (with `why`) when
// neither can run the call.
bool dense_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const AttentionOptions& opts,
                     bool return_lse, AttentionOutput* out, std::string* why);
#else
inline bool dense_attention(const at::Tensor&, const at::Tensor&, const at::Tensor&, const AttentionOptions&, bool,
                            AttentionOutput*, std::string* why) {
  if (why) *why = "this build has no CUDA kernels (XATTN_CUDA off or a CPU-only LibTorch)";
  return false;
}
inline bool supports_attention(const at::Tensor&, const at::Tensor&, const at::Tensor&, const BlockMask&,
                               std::string* why) {
  if (why) *why = "this build has no CUDA kernels (XATTN_CUDA off or a CPU-only LibTorch)";
  return false;
}
inline AttentionOutput block_sparse_attention(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                              const BlockMask&, const AttentionOptions&, bool) {
  return {};
}
inline bool supports_estimate(const at::Tensor&, const at::Tensor&, int64_t, int64_t, std::string* why) {
  if (why) *why = "this build has no CUDA kernels (XATTN_CUDA off or a CPU-only LibTorch)";
  return false;
}
inline at::Tensor antidiagonal_scores(const at::Tensor&, const at::Tensor&, int64_t, int64_t, const AttentionOptions&) {
  return {};
}
inline BlockMask select(const at::Tensor&, const XAttentionConfig&, int64_t, int64_t, const AttentionOptions&) {
  return {};
}
inline BlockMask estimate(const at::Tensor&, const at::Tensor&, const XAttentionConfig&, const AttentionOptions&,
                          bool* = nullptr) {
  return {};
}
#endif

}  // namespace xattn::attention::cuda
