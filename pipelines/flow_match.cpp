#include "pipelines/flow_match.h"

#include <string>

#include "core/error.h"

namespace xattn::pipelines {

FlowMatchEuler::FlowMatchEuler(int steps, double shift, int num_train_timesteps) {
  if (steps < 1) throw Error("scheduler", "steps must be >= 1, got " + std::to_string(steps));
  if (!(shift > 0)) throw Error("scheduler", "shift must be > 0, got " + std::to_string(shift));
  // float32 arithmetic throughout, as numpy does it on a float32 array.
  const float s = static_cast<float>(shift);
  for (int i = 0; i < steps; ++i) {
    const float sigma = static_cast<float>(1.0 + static_cast<double>(i) * (-1.0 / steps));  // numpy linspace(1, 0, steps + 1)[i]
    const float shifted = s * sigma / (1.0f + (s - 1.0f) * sigma);
    sigmas_.push_back(shifted);
    timesteps_.push_back(shifted * static_cast<float>(num_train_timesteps));
  }
  sigmas_.push_back(0.0f);
}

at::Tensor FlowMatchEuler::step(const at::Tensor& velocity, int i, const at::Tensor& sample) const {
  if (i < 0 || i >= steps()) throw Error("scheduler", "step " + std::to_string(i) + " of " + std::to_string(steps()));
  const float dt = sigmas_[static_cast<size_t>(i) + 1] - sigmas_[static_cast<size_t>(i)];  // float32, as torch
  const at::Tensor prev = sample.to(at::kFloat) + velocity * dt;
  return prev.to(velocity.scalar_type());
}

}  // namespace xattn::pipelines
