#include "eval/gpu_timing.h"

#include <ATen/Context.h>
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDACachingAllocator.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"

namespace xattn::eval {

double median_ms(const std::function<void()>& f, int warmup, int reps, double min_region_ms) {
  // Warm up for `warmup` calls and (warmup > 0) at least 200 ms of device time, so the clocks settle after the
  // previous, possibly heavier, workload (ncu at fixed clocks found a kernel equally efficient at
  // two densities where unsettled timings differed by 10%).
  at::cuda::CUDAEvent w0(cudaEventDefault), w1(cudaEventDefault);
  w0.record();
  int calls = 0;
  for (; calls < warmup; ++calls) f();
  float warm_ms = 0.f;
  for (int extra = 0; warmup > 0 && extra < 1000; ++extra) {
    w1.record();
    w1.synchronize();
    warm_ms = w0.elapsed_time(w1);
    if (warm_ms >= 200.f) break;
    f();
    ++calls;
  }
  // Back-to-back calls per timed region: the start event is recorded before the host has issued
  // the first launch, so a short region would also time the host's launch latency (and any gap
  // between the call's launches the host is slower to fill than the device).
  int batch = 1;
  if (min_region_ms > 0 && calls > 0 && warm_ms > 0.f)
    batch = std::clamp(static_cast<int>(std::ceil(min_region_ms * calls / warm_ms)), 1, 1000);
  std::vector<float> times;
  for (int i = 0; i < std::max(1, reps); ++i) {
    at::cuda::CUDAEvent start(cudaEventDefault), stop(cudaEventDefault);
    start.record();
    for (int j = 0; j < batch; ++j) f();
    stop.record();
    stop.synchronize();
    times.push_back(start.elapsed_time(stop) / static_cast<float>(batch));
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

SdpaBackendOnly::SdpaBackendOnly(const std::string& backend) {
  auto& ctx = at::globalContext();
  flash_ = ctx.userEnabledFlashSDP(), mem_ = ctx.userEnabledMemEfficientSDP(), math_ = ctx.userEnabledMathSDP(),
  cudnn_ = ctx.userEnabledCuDNNSDP();
  ctx.setSDPUseFlash(backend == "flash");
  ctx.setSDPUseMemEfficient(false);
  ctx.setSDPUseMath(false);
  ctx.setSDPUseCuDNN(backend == "cudnn");
}

SdpaBackendOnly::~SdpaBackendOnly() {
  auto& ctx = at::globalContext();
  ctx.setSDPUseFlash(flash_);
  ctx.setSDPUseMemEfficient(mem_);
  ctx.setSDPUseMath(math_);
  ctx.setSDPUseCuDNN(cudnn_);
}

double sdpa_dense_ms(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, bool causal,
                     const std::string& backend, int warmup, int reps, double min_region_ms) {
  const SdpaBackendOnly only(backend);
  const int64_t g = q.size(2) / k.size(2);
  const at::Tensor qt = q.transpose(1, 2);  // [B, H, L, D]
  const at::Tensor kt = k.repeat_interleave(g, 2).transpose(1, 2);
  const at::Tensor vt = v.repeat_interleave(g, 2).transpose(1, 2);
  return median_ms([&] { at::scaled_dot_product_attention(qt, kt, vt, {}, 0.0, causal); }, warmup, reps,
                   min_region_ms);
}

double peak_gib(int dev) {
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(static_cast<c10::DeviceIndex>(dev));
  return static_cast<double>(stats.allocated_bytes[0].peak) / (1024.0 * 1024.0 * 1024.0);
}

}  // namespace xattn::eval
