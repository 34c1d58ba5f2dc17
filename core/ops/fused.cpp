#include "core/ops/fused.h"

#include "core/device.h"
#include "core/error.h"

#ifdef XATTN_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>

#include "kernels/xattn_kernels.h"
#endif

namespace xattn::ops {

at::Tensor rms_norm_rope_reference(const at::Tensor& x, const at::Tensor& weight, double eps, const at::Tensor& cos,
                                   const at::Tensor& sin) {
  at::Tensor f = x.to(at::kFloat);
  f = f * at::rsqrt(f.pow(2).mean(-1, true) + eps);
  const at::Tensor y = f.to(weight.scalar_type()) * weight;
  if (!cos.defined()) return y;
  const auto sizes = y.sizes().vec();
  const at::Tensor pairs = y.reshape({sizes[0], sizes[1], sizes[2], sizes[3] / 2, 2});
  const at::Tensor rotated = at::stack({pairs.select(-1, 1).neg(), pairs.select(-1, 0)}, -1).reshape(sizes);
  const at::Tensor c = cos.view({1, sizes[1], 1, sizes[3]}), s = sin.view({1, sizes[1], 1, sizes[3]});
  return (y.to(at::kFloat) * c + rotated.to(at::kFloat) * s).to(y.scalar_type());
}

at::Tensor rms_norm_rope(const at::Tensor& x, const at::Tensor& weight, double eps, const at::Tensor& cos,
                         const at::Tensor& sin) {
  XATTN_CHECK(x.dim() == 4 && weight.dim() == 1 && weight.size(0) == x.size(3), "rms_norm_rope: x [B, L, H, D] ",
              "and weight [D] expected, got ", shape_str(x), " and ", shape_str(weight));
  XATTN_CHECK(!cos.defined() || (sin.defined() && cos.dim() == 2 && cos.size(0) == x.size(1) &&
                                 cos.size(1) == x.size(3) && sin.sizes() == cos.sizes()),
              "rms_norm_rope: cos/sin [L, D] expected for x ", shape_str(x));
#ifdef XATTN_WITH_CUDA
  const bool half = x.scalar_type() == at::kBFloat16 || x.scalar_type() == at::kHalf;
  if (x.is_cuda() && half && weight.scalar_type() == x.scalar_type() && weight.device() == x.device() &&
      (x.size(3) == 64 || x.size(3) == 128) && (!cos.defined() || cos.device() == x.device())) {
    const at::Tensor xc = x.contiguous(), wc = weight.contiguous();
    at::Tensor c, s;
    if (cos.defined()) c = cos.to(at::kFloat).contiguous(), s = sin.to(at::kFloat).contiguous();
    at::Tensor out = at::empty_like(xc);
    kernels::RmsNormRopeParams p;
    p.x = xc.data_ptr();
    p.out = out.data_ptr();
    p.weight = wc.data_ptr();
    p.cos = c.defined() ? c.data_ptr<float>() : nullptr;
    p.sin = s.defined() ? s.data_ptr<float>() : nullptr;
    p.rows = xc.numel() / xc.size(3);
    p.head_dim = static_cast<int>(xc.size(3));
    p.heads = static_cast<int>(xc.size(2));
    p.seq_len = static_cast<int>(xc.size(1));
    p.eps = static_cast<float>(eps);
    p.dtype = x.scalar_type() == at::kBFloat16 ? kernels::DType::kBF16 : kernels::DType::kFP16;
    const cudaError_t e = kernels::rms_norm_rope(p, at::cuda::getCurrentCUDAStream(x.device().index()));
    XATTN_CHECK(e == cudaSuccess, "rms_norm_rope: CUDA error ", cudaGetErrorString(e));
    return out;
  }
#endif
  return rms_norm_rope_reference(x, weight, eps, cos, sin);
}

}  // namespace xattn::ops
