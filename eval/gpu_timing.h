// GPU timing helpers for benchmarks: CUDA events around a callable, median of repetitions
// after warm-up; dense baselines through LibTorch's SDPA with one backend forced.
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <string>
#include <vector>

namespace xattn::eval {

// Median milliseconds of `reps` runs of f (after `warmup` runs, continued until 200 ms of device
// time when warmup > 0), timed with CUDA events on the current stream. min_region_ms > 0: each
// timed region issues enough back-to-back calls (from the warm-up's pace) to last that long, and
// the result is per call, so the host's launch latency stays out of short calls' times.
double median_ms(const std::function<void()>& f, int warmup, int reps, double min_region_ms = 0);
// The same for several callables whose times are compared (a baseline and the modes measured
// against it): warm-up and timed repetitions run in rounds, each callable once per round in
// order, so the clocks' drift over the run reaches them alike; with min_region_ms, each timed
// region follows half as many untimed calls of its callable (the clocks settle to its power
// draw). One median per callable.
std::vector<double> median_ms_interleaved(const std::vector<std::function<void()>>& fs, int warmup, int reps,
                                          double min_region_ms = 0);
// Timed region for comparing kernels on a power-capped GPU (benches of kernels against cuDNN).
// Under load an H100 sits at its 700 W cap and the power controller moves the SM clock between
// ~1350 and 1980 MHz within a quarter second (nvidia-smi at 250 ms, 2026-11-27); a region of a
// few calls catches one phase of that swing, a 200 ms region averages over it.
constexpr double kSteadyRegionMs = 200.0;

// `call` with the environment variable of `setting` ("NAME=VALUE") set around it, and the
// previous value back after (our launchers read their XATTN_* switches at every launch): a kernel
// switch's twin of a timed call, for --ab runs.
std::function<void()> with_setting(std::function<void()> call, const std::string& setting);

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
// heads once, when the callable is made, outside the timing). The call throws if the backend cannot
// run the inputs.
std::function<void()> sdpa_dense_call(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, bool causal,
                                      const std::string& backend);
// Peak bytes the caching allocator has handed out on device `dev` since its last resetPeakStats,
// in GiB.
double peak_gib(int dev);

}  // namespace xattn::eval
