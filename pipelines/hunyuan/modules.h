// Small building blocks shared by the HunyuanVideo modules: a linear layer with its published
// names, parameter registration, and the norms and embeddings of the diffusers implementation.
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <string>

#include "pipelines/text/model_options.h"

namespace xattn::hunyuan {

using ModelOptions = text::ModelOptions;
using Params = std::map<std::string, at::Tensor>;

struct Linear {
  at::Tensor w, b;  // w [out, in]; b [out] or undefined
  at::Tensor operator()(const at::Tensor& x) const { return at::linear(x, w, b); }
  void make(int64_t in, int64_t out, const at::TensorOptions& t, bool bias = true);
  void add_to(Params& p, const std::string& name) const;  // name.weight, name.bias
};

// Timestep sinusoid (256 wide, cos first, as diffusers' Timesteps(flip_sin_to_cos=True, shift 0)):
// t [B] -> [B, dim] in fp32.
at::Tensor timestep_sinusoid(const at::Tensor& t, int64_t dim = 256);

// LayerNorm without affine parameters (eps 1e-6), in the input dtype.
at::Tensor layer_norm(const at::Tensor& x, double eps = 1e-6);

// QK RMSNorm with rotary embedding: core/ops/fused.h (ops::rms_norm_rope).

// x * (1 + scale) + shift with [B, C] modulation over [B, L, C].
inline at::Tensor modulate(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale) {
  return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1);
}

}  // namespace xattn::hunyuan
