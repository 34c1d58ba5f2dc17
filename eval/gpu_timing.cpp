#include "eval/gpu_timing.h"

#include <ATen/Context.h>
#include <ATen/cuda/CUDAEvent.h>

#include <algorithm>
#include <vector>

#include "core/error.h"

namespace xattn::eval {

double median_ms(const std::function<void()>& f, int warmup, int reps) {
  for (int i = 0; i < warmup; ++i) f();
  std::vector<float> times;
  for (int i = 0; i < std::max(1, reps); ++i) {
    at::cuda::CUDAEvent start(cudaEventDefault), stop(cudaEventDefault);
    start.record();
    f();
    stop.record();
    stop.synchronize();
    times.push_back(start.elapsed_time(stop));
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

double sdpa_dense_ms(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, bool causal,
                     const std::string& backend, int warmup, int reps) {
  auto& ctx = at::globalContext();
  const bool old_flash = ctx.userEnabledFlashSDP(), old_mem = ctx.userEnabledMemEfficientSDP(),
             old_math = ctx.userEnabledMathSDP(), old_cudnn = ctx.userEnabledCuDNNSDP();
  ctx.setSDPUseFlash(backend == "flash");
  ctx.setSDPUseMemEfficient(false);
  ctx.setSDPUseMath(false);
  ctx.setSDPUseCuDNN(backend == "cudnn");
  const int64_t g = q.size(2) / k.size(2);
  const at::Tensor qt = q.transpose(1, 2);  // [B, H, L, D]
  const at::Tensor kt = k.repeat_interleave(g, 2).transpose(1, 2);
  const at::Tensor vt = v.repeat_interleave(g, 2).transpose(1, 2);
  double ms = 0;
  try {
    ms = median_ms([&] { at::scaled_dot_product_attention(qt, kt, vt, {}, 0.0, causal); }, warmup, reps);
  } catch (...) {
    ctx.setSDPUseFlash(old_flash), ctx.setSDPUseMemEfficient(old_mem), ctx.setSDPUseMath(old_math),
        ctx.setSDPUseCuDNN(old_cudnn);
    throw;
  }
  ctx.setSDPUseFlash(old_flash), ctx.setSDPUseMemEfficient(old_mem), ctx.setSDPUseMath(old_math),
      ctx.setSDPUseCuDNN(old_cudnn);
  return ms;
}

}  // namespace xattn::eval
