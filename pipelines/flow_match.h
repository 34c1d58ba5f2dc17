// Flow-matching Euler sampler (diffusers' FlowMatchEulerDiscreteScheduler as HunyuanVideo uses it):
// sigmas linspace(1, 0, steps + 1) without the last, shifted by s*sigma / (1 + (s - 1)*sigma),
// timesteps sigma * 1000, a final sigma 0 appended; each step x += (sigma_next - sigma) * v.
//
//   xattn::pipelines::FlowMatchEuler sched(30, 7.0);
//   for (int i = 0; i < sched.steps(); ++i) x = sched.step(model(x, sched.timestep(i)), i, x);
#pragma once

#include <ATen/ATen.h>

#include <vector>

namespace xattn::pipelines {

class FlowMatchEuler {
 public:
  FlowMatchEuler(int steps, double shift = 7.0, int num_train_timesteps = 1000);

  int steps() const { return static_cast<int>(timesteps_.size()); }
  const std::vector<float>& sigmas() const { return sigmas_; }  // steps + 1 values, the last 0
  float sigma(int i) const { return sigmas_.at(static_cast<size_t>(i)); }
  float timestep(int i) const { return timesteps_.at(static_cast<size_t>(i)); }  // sigma(i) * 1000

  // x_{i+1} = x_i + (sigma_{i+1} - sigma_i) * v: the update is computed in v's dtype, the sum in
  // fp32, the result returned in v's dtype (as diffusers does).
  at::Tensor step(const at::Tensor& velocity, int i, const at::Tensor& sample) const;

 private:
  std::vector<float> sigmas_, timesteps_;
};

}  // namespace xattn::pipelines
