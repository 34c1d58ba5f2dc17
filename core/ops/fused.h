// Small fused tensor operations that pipelines use on their hot paths: one CUDA kernel on the GPU
// (kernels/fused_norm.cu), the same arithmetic in ATen elsewhere.
#pragma once

#include <ATen/ATen.h>

namespace xattn::ops {

// RMSNorm of x over its last dimension (fp32 statistics), times weight, then — when cos is
// defined — rotary embedding of pairs (2i, 2i + 1): x [B, L, H, D], weight [D] (x's dtype),
// cos/sin fp32 [L, D]. Returns a new [B, L, H, D] tensor in x's dtype.
// On CUDA (bf16/fp16, D 64 or 128) one pass over x instead of ~15 ATen passes (20 ms per
// HunyuanVideo block at 119K tokens on H100); the result equals the ATen path up to one unit in
// the last place (the sum of squares is added in another order).
at::Tensor rms_norm_rope(const at::Tensor& x, const at::Tensor& weight, double eps, const at::Tensor& cos = {},
                         const at::Tensor& sin = {});

// The ATen composition, on any device (what the CUDA kernel is checked against).
at::Tensor rms_norm_rope_reference(const at::Tensor& x, const at::Tensor& weight, double eps,
                                   const at::Tensor& cos = {}, const at::Tensor& sin = {});

}  // namespace xattn::ops
