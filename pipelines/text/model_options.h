// Where and in which dtype a model's weights live (CPU fp32 for parity tests, CUDA bf16 in use).
#pragma once

#include <ATen/ATen.h>

namespace xattn::text {

struct ModelOptions {
  at::Device device = at::kCPU;
  at::ScalarType dtype = at::kFloat;
};

}  // namespace xattn::text
