// GPU timing helpers for benchmarks: CUDA events around a callable, median of repetitions
// after warm-up; dense baselines through LibTorch's SDPA with one backend forced.
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <string>

namespace xattn::eval {

// Median milliseconds of `reps` runs of f (after `warmup` runs, continued until 200 ms of device
// time when warmup > 0), timed with CUDA events on the current stream. min_region_ms > 0: each
// timed region issues enough back-to-back calls (from the warm-up's pace) to last that long, and
// the result is per call, so the host's launch latency stays out of short calls' times.
double median_ms(const std::function<void()>& f, int warmup, int reps, double min_region_ms = 0);

// While alive, at::scaled_dot_product_attention may use only `backend` ("cudnn" or "flash");
// the previous backend switches come back on destruction (also when an exception unwinds).
class SdpaBackendOnly {
 public:
  explicit SdpaBackendOnly(const std::string& backend);
  ~SdpaBackendOnly();
  SdpaBackendOnly(const SdpaBackendOnly&) = delete;
  SdpaBackendOnly& operator=(const SdpaBackendOnly&) = delete;

 private:
  bool flash_, mem_, math_, cudnn_;
};

// Dense attention through at::scaled_dot_product_attention with only the named backend
// enabled ("cudnn" or "flash"); q [B, L, H, D], k/v [B, L, Hkv, D] (K/V are expanded to H
// heads once, outside the timing). Throws if the backend cannot run the inputs.
double sdpa_dense_ms(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, bool causal,
                     const std::string& backend, int warmup, int reps, double min_region_ms = 0);
// Peak bytes the caching allocator has handed out on device `dev` since its last resetPeakStats,
// in GiB.
double peak_gib(int dev);

inline double cudnn_dense_ms(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, bool causal, int warmup,
                             int reps, double min_region_ms = 0) {
  return sdpa_dense_ms(q, k, v, causal, "cudnn", warmup, reps, min_region_ms);
}

}  // namespace xattn::eval
