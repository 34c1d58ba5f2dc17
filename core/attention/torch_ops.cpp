// PyTorch operators: torch.ops.load_library("libxattn_ops.so"), then
//   torch.ops.xattn.estimate(q, k, stride, block_size, threshold, causal, selection, top_k, top_ratio, key_lengths)
//   torch.ops.xattn.block_sparse_attention(q, k, v, mask, block_size, causal, scale, key_lengths)
//   torch.ops.xattn.attention(q, k, v, mode, stride, block_size, threshold, causal, scale, key_lengths)
// on [B, N, H, D] tensors — a drop-in for attention processors in diffusers/transformers.
// Each calls the same C++ functions as core/attention/xattention.h.
#include <torch/library.h>

#include <string>
#include <tuple>

#include "core/attention/xattention.h"

namespace xattn::attention {
namespace {

AttentionOptions options(bool causal, const c10::optional<double>& scale, const c10::optional<at::Tensor>& key_lengths) {
  AttentionOptions o;
  o.causal = causal;
  if (scale.has_value()) o.scale = *scale;
  if (key_lengths.has_value()) o.key_lengths = *key_lengths;
  return o;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> op_estimate(const at::Tensor& q, const at::Tensor& k, int64_t stride,
                                                           int64_t block_size, double threshold, bool causal,
                                                           c10::string_view selection, int64_t top_k,
                                                           double top_ratio,
                                                           const c10::optional<at::Tensor>& key_lengths) {
  XAttentionConfig cfg;
  cfg.stride = static_cast<int>(stride);
  cfg.block_size = static_cast<int>(block_size);
  cfg.threshold = threshold;
  cfg.selection = std::string(selection.data(), selection.size());
  cfg.top_k = static_cast<int>(top_k);
  cfg.top_ratio = top_ratio;
  const BlockMask m = estimate(q, k, cfg, options(causal, c10::nullopt, key_lengths));
  return {m.mask, m.indices, m.counts};
}

std::tuple<at::Tensor, at::Tensor> op_block_sparse(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                   const at::Tensor& mask, int64_t block_size, bool causal,
                                                   const c10::optional<double>& scale,
                                                   const c10::optional<at::Tensor>& key_lengths) {
  const AttentionOptions o = options(causal, scale, key_lengths);
  const BlockMask m = BlockMask::from_mask(mask, block_size, q.size(1), k.size(1), o);
  AttentionOutput out = block_sparse_attention(q, k, v, m, o, /*return_lse=*/true);
  return {out.out, out.lse};
}

at::Tensor op_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, c10::string_view mode,
                        int64_t stride, int64_t block_size, double threshold, bool causal,
                        const c10::optional<double>& scale, const c10::optional<at::Tensor>& key_lengths) {
  AttentionSpec spec;
  spec.mode = std::string(mode.data(), mode.size());
  spec.xattention.stride = static_cast<int>(stride);
  spec.xattention.block_size = static_cast<int>(block_size);
  spec.xattention.threshold = threshold;
  return attention(q, k, v, spec, options(causal, scale, key_lengths));
}

}  // namespace
}  // namespace xattn::attention

TORCH_LIBRARY(xattn, m) {
  using namespace xattn::attention;
  m.def(
      "estimate(Tensor q, Tensor k, int stride=8, int block_size=128, float threshold=0.9, bool causal=False, "
      "str selection='threshold', int top_k=16, float top_ratio=0.25, Tensor? key_lengths=None) "
      "-> (Tensor mask, Tensor indices, Tensor counts)",
      &op_estimate);
  m.def(
      "block_sparse_attention(Tensor q, Tensor k, Tensor v, Tensor mask, int block_size=128, bool causal=False, "
      "float? scale=None, Tensor? key_lengths=None) -> (Tensor out, Tensor lse)",
      &op_block_sparse);
  m.def(
      "attention(Tensor q, Tensor k, Tensor v, str mode='xattention', int stride=8, int block_size=128, "
      "float threshold=0.9, bool causal=False, float? scale=None, Tensor? key_lengths=None) -> Tensor",
      &op_attention);
}
