#include "eval/gpu_timing.h"

#include <ATen/Context.h>
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDACachingAllocator.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"

namespace xattn::eval {

std::vector<double> median_ms_interleaved(const std::vector<std::function<void()>>& fs, int warmup, int reps,
                                          double min_region_ms) {
  const size_t n = fs.size();
  // Warm-up rounds (each callable once per round, in order) for `warmup` rounds and, when warmup
  // > 0, at least 200 ms of device time, so the clocks settle after the previous, possibly
  // heavier, workload; each call is timed on its own, which gives its pace.
  std::vector<double> warm_ms(n, 0.0);
  int rounds = 0;
  for (double total = 0.0; warmup > 0 && rounds < 1000 && (rounds < warmup || total < 200.0); ++rounds) {
    std::deque<at::cuda::CUDAEvent> ev;
    for (size_t i = 0; i <= n; ++i) ev.emplace_back(cudaEventDefault);
    ev[0].record();
    for (size_t i = 0; i < n; ++i) {
      fs[i]();
      ev[i + 1].record();
    }
    ev[n].synchronize();
    for (size_t i = 0; i < n; ++i) {
      const double ms = ev[i].elapsed_time(ev[i + 1]);
      warm_ms[i] += ms;
      total += ms;
    }
  }
  // Back-to-back calls per timed region: the start event is recorded before the host has issued
  // the first launch, so a short region would also time the host's launch latency (and any gap
  // between the call's launches the host is slower to fill than the device).
  std::vector<int> batch(n, 1);
  for (size_t i = 0; i < n; ++i)
    if (min_region_ms > 0 && rounds > 0 && warm_ms[i] > 0.0)
      batch[i] = std::clamp(static_cast<int>(std::ceil(min_region_ms * rounds / warm_ms[i])), 1, 100000);
  // Timed rounds, the callables interleaved: a drift of the clocks (power, temperature) over the
  // run then shifts every callable's times alike instead of whichever ran during it. One
  // callable per region run back to back showed sparse modes at 64K 10-15% slower per block in
  // whichever positions fell in a slow stretch, while ncu at fixed clocks timed them equally.
  // Each timed region follows half as many untimed calls of the same callable, so the power
  // controller has settled to this callable's draw when timing starts: without them a region
  // carried over its predecessor's clocks (the same mode measured up to ~7% apart depending on
  // which mode preceded it, causal 8K on the H100, 2026-11-27). The start event then also sits
  // behind queued device work, so the host's launch latency stays out of every region.
  std::vector<std::vector<float>> times(n);
  for (int r = 0; r < std::max(1, reps); ++r) {
    for (size_t i = 0; i < n; ++i) {
      at::cuda::CUDAEvent start(cudaEventDefault), stop(cudaEventDefault);
      for (int j = 0; j < batch[i] / 2; ++j) fs[i]();
      start.record();
      for (int j = 0; j < batch[i]; ++j) fs[i]();
      stop.record();
      stop.synchronize();
      times[i].push_back(start.elapsed_time(stop) / static_cast<float>(batch[i]));
    }
  }
  std::vector<double> med(n);
  for (size_t i = 0; i < n; ++i) {
    std::sort(times[i].begin(), times[i].end());
    med[i] = times[i][times[i].size() / 2];
  }
  return med;
}

double median_ms(const std::function<void()>& f, int warmup, int reps, double min_region_ms) {
  return median_ms_interleaved({f}, warmup, reps, min_region_ms)[0];
}

namespace {
class EnvSetting {
 public:
  EnvSetting(const std::string& name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name.c_str())) had_ = true, old_ = old;
    setenv(name.c_str(), value.c_str(), 1);
  }
  ~EnvSetting() {
    if (had_)
      setenv(name_.c_str(), old_.c_str(), 1);
    else
      unsetenv(name_.c_str());
  }
  EnvSetting(const EnvSetting&) = delete;
  EnvSetting& operator=(const EnvSetting&) = delete;

 private:
  std::string name_, old_;
  bool had_ = false;
};
}  // namespace

std::function<void()> with_setting(std::function<void()> call, const std::string& setting) {
  const size_t eq = setting.find('=');
  return [call = std::move(call), name = setting.substr(0, eq), value = setting.substr(eq + 1)] {
    const EnvSetting env(name, value);
    call();
  };
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

std::function<void()> sdpa_dense_call(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, bool causal,
                                      const std::string& backend) {
  const int64_t g = q.size(2) / k.size(2);
  const at::Tensor qt = q.transpose(1, 2);  // [B, H, L, D]
  const at::Tensor kt = k.repeat_interleave(g, 2).transpose(1, 2);
  const at::Tensor vt = v.repeat_interleave(g, 2).transpose(1, 2);
  return [=] {
    const SdpaBackendOnly only(backend);
    at::scaled_dot_product_attention(qt, kt, vt, {}, 0.0, causal);
  };
}

double peak_gib(int dev) {
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(static_cast<c10::DeviceIndex>(dev));
  return static_cast<double>(stats.allocated_bytes[0].peak) / (1024.0 * 1024.0 * 1024.0);
}

}  // namespace xattn::eval
