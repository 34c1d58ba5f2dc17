#include "pipelines/hunyuan/modules.h"

#include <cmath>

namespace xattn::hunyuan {

void Linear::make(int64_t in, int64_t out, const at::TensorOptions& t, bool bias) {
  w = at::empty({out, in}, t);
  if (bias) b = at::empty({out}, t);
}

void Linear::add_to(Params& p, const std::string& name) const {
  p[name + ".weight"] = w;
  if (b.defined()) p[name + ".bias"] = b;
}

at::Tensor timestep_sinusoid(const at::Tensor& t, int64_t dim) {
  const int64_t half = dim / 2;
  // The operation order of diffusers' get_timestep_embedding (fp32).
  const at::Tensor exponent =
      at::arange(0, half, at::TensorOptions().dtype(at::kFloat).device(t.device())) * (-std::log(10000.0)) / half;
  const at::Tensor emb = t.to(at::kFloat).unsqueeze(1) * exponent.exp().unsqueeze(0);  // [B, half]
  return at::cat({emb.cos(), emb.sin()}, -1);
}

at::Tensor layer_norm(const at::Tensor& x, double eps) { return at::layer_norm(x, {x.size(-1)}, {}, {}, eps); }

}  // namespace xattn::hunyuan
