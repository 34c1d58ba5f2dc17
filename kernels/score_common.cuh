// Shared by the scoring kernels: the workspace row layout.
#pragma once

#include <cstdint>

namespace xattn::kernels {

// Workspace floats per (batch, head, query group): Kb block sums, then one running-max slot
// per 64 key groups (kernels with 128-wide tiles use every other slot).
__host__ __device__ inline int64_t score_ws_row_floats(int k_len, int stride, int block_size) {
  const int nk = (k_len + stride - 1) / stride;
  const int kb = (k_len + block_size - 1) / block_size;
  return kb + (nk + 63) / 64 + 1;
}

}  // namespace xattn::kernels
