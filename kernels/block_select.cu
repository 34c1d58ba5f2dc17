// Block selection on the GPU: one CTA per (batch, head, query block) row. The row's key
// blocks are ordered as the reference orders them (forced first, then by score, blocks that
// cannot be computed last; ties by index, like a stable sort) with a bitonic sort in shared
// memory, prefix sums give the mass kept before each candidate, and the kept set is written
// as a bool mask and as ascending index lists. No host round trip; graph-capturable.
#include <cmath>

#include "kernels/xattn_kernels.h"

namespace xattn::kernels {
namespace {

constexpr int kThreads = 256;

// Exclusive prefix sum over `n` values held in shared memory `v` (in place), returns the total.
template <typename V>
__device__ V block_exclusive_scan(V* v, int n, V* warp_sums) {
  const int per = (n + kThreads - 1) / kThreads;
  const int lo = min(static_cast<int>(threadIdx.x) * per, n), hi = min(lo + per, n);
  V local = 0;
  for (int x = lo; x < hi; ++x) local += v[x];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  V inc = local;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const V y = __shfl_up_sync(0xffffffffu, inc, o);
    if (lane >= o) inc += y;
  }
  if (lane == 31) warp_sums[warp] = inc;
  __syncthreads();
  if (warp == 0) {
    V w = lane < kThreads / 32 ? warp_sums[lane] : V(0);
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const V y = __shfl_up_sync(0xffffffffu, w, o);
      if (lane >= o) w += y;
    }
    if (lane < kThreads / 32) warp_sums[lane] = w;  // inclusive over warps
  }
  __syncthreads();
  const V total = warp_sums[kThreads / 32 - 1];
  V run = (warp > 0 ? warp_sums[warp - 1] : V(0)) + inc - local;
  for (int x = lo; x < hi; ++x) {
    const V cur = v[x];
    v[x] = run;
    run += cur;
  }
  __syncthreads();
  return total;
}

// True when (ka, ia) comes before (kb, ib): larger key first, ties by smaller index.
__device__ __forceinline__ bool before(float ka, int ia, float kb, int ib) {
  return ka > kb || (ka == kb && static_cast<unsigned>(ia) < static_cast<unsigned>(ib));
}

__global__ void __launch_bounds__(kThreads) select_kernel(const SelectParams p, int padded) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  float* key = reinterpret_cast<float*>(smem_raw);     // [padded]
  int* idx = reinterpret_cast<int*>(key + padded);     // [padded]
  float* mass = reinterpret_cast<float*>(idx + padded);// [padded]
  int* flag = reinterpret_cast<int*>(mass + padded);   // [padded] by key block
  __shared__ float fsums[kThreads / 32];
  __shared__ int isums[kThreads / 32];

  const int I = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int bs = p.block_size;
  const int qb = (p.q_len + bs - 1) / bs, kb = (p.k_len + bs - 1) / bs;
  const int len = p.key_lengths ? min(max(p.key_lengths[b], 0), p.k_len) : p.k_len;
  const int off = p.causal ? p.k_len - p.q_len : 0;
  const int first_q = I * bs + off, last_q = min((I + 1) * bs, p.q_len) - 1 + off;
  const int64_t row = (static_cast<int64_t>(b) * p.heads + h) * qb + I;
  const float* s = p.scores + row * kb;

  auto allowed = [&](int J) { return J * bs < len && (!p.causal || J * bs <= last_q); };
  auto forced = [&](int J) {
    if (!p.causal || !allowed(J)) return false;
    return (p.force_sink && J == 0) || (p.force_diagonal && J >= first_q / bs && J <= last_q / bs);
  };
  for (int J = threadIdx.x; J < padded; J += kThreads) {
    if (J < kb) {
      key[J] = forced(J) ? INFINITY : (allowed(J) ? fmaxf(s[J], 0.f) : -1.f);
      idx[J] = J;
    } else {
      key[J] = -2.f;
      idx[J] = -1;
    }
  }
  __syncthreads();
  // Bitonic sort, descending by (key, -index).
  for (int size = 2; size <= padded; size <<= 1) {
    for (int stride = size >> 1; stride > 0; stride >>= 1) {
      for (int x = threadIdx.x; x < padded; x += kThreads) {
        const int y = x ^ stride;
        if (y > x) {
          const bool first_half = (x & size) == 0;
          const bool x_first = before(key[x], idx[x], key[y], idx[y]);
          if (first_half != x_first) {
            const float tk = key[x];
            key[x] = key[y];
            key[y] = tk;
            const int ti = idx[x];
            idx[x] = idx[y];
            idx[y] = ti;
          }
        }
      }
      __syncthreads();
    }
  }
  // Mass in sorted order; number of computable blocks.
  for (int x = threadIdx.x; x < padded; x += kThreads) {
    const int J = idx[x];
    mass[x] = (J >= 0 && allowed(J)) ? fmaxf(s[J], 0.f) : 0.f;
    flag[x] = (J >= 0 && allowed(J)) ? 1 : 0;
  }
  __syncthreads();
  const int n_allowed = block_exclusive_scan<int>(flag, padded, isums);
  const float total = block_exclusive_scan<float>(mass, padded, fsums);  // mass[x] = mass before x
  const float tau = p.head_threshold ? p.head_threshold[h] : p.threshold;
  int limit = padded;
  if (p.selection == Selection::kTopK) limit = p.top_k;
  if (p.selection == Selection::kTopRatio) limit = max(1, static_cast<int>(ceilf(p.top_ratio * n_allowed)));
  // Keep decisions in sorted order; idx[x] becomes the kept block or -1.
  for (int x = threadIdx.x; x < padded; x += kThreads) {
    const int J = idx[x];
    bool keep = false;
    if (J >= 0 && allowed(J)) {
      if (key[x] == INFINITY) {
        keep = true;  // forced
      } else if (p.selection == Selection::kThreshold) {
        keep = mass[x] < tau * total || tau >= 1.f || (!p.causal && x == 0);
      } else {
        keep = x < limit;
      }
    }
    idx[x] = keep ? J : -1;
  }
  for (int x = threadIdx.x; x < padded; x += kThreads) flag[x] = 0;
  __syncthreads();
  for (int x = threadIdx.x; x < padded; x += kThreads)
    if (idx[x] >= 0) flag[idx[x]] = 1;
  __syncthreads();
  for (int J = threadIdx.x; J < kb; J += kThreads) p.mask[row * kb + J] = flag[J] != 0;
  // Ascending compact list: rank of each kept block among kept blocks.
  const int kept = block_exclusive_scan<int>(flag, padded, isums);  // flag[J] = kept blocks before J
  for (int J = threadIdx.x; J < kb; J += kThreads) {
    const bool k = (J + 1 < padded ? flag[J + 1] : kept) != flag[J];
    if (k) p.indices[row * kb + flag[J]] = J;
  }
  for (int x = kept + threadIdx.x; x < kb; x += kThreads) p.indices[row * kb + x] = -1;
  if (threadIdx.x == 0) {
    p.counts[row] = kept;
    atomicAdd(p.kept + (static_cast<int64_t>(b) * p.heads + h), static_cast<unsigned long long>(kept));
    atomicAdd(p.computable + (static_cast<int64_t>(b) * p.heads + h), static_cast<unsigned long long>(n_allowed));
  }
}

}  // namespace

cudaError_t select_blocks(const SelectParams& p, cudaStream_t stream) {
  if (!p.scores || !p.mask || !p.indices || !p.counts || !p.kept || !p.computable) return cudaErrorInvalidValue;
  if (p.batch <= 0 || p.heads <= 0 || p.q_len <= 0 || p.k_len <= 0 || p.block_size <= 0) return cudaErrorInvalidValue;
  const int kb = (p.k_len + p.block_size - 1) / p.block_size;
  if (kb > kMaxSelectBlocks) return cudaErrorInvalidValue;
  int padded = 1;
  while (padded < kb) padded <<= 1;
  const size_t smem = static_cast<size_t>(padded) * 16;
  cudaError_t e = cudaFuncSetAttribute(select_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
  if (e != cudaSuccess) return e;
  dim3 grid((p.q_len + p.block_size - 1) / p.block_size, p.heads, p.batch);
  select_kernel<<<grid, kThreads, smem, stream>>>(p, padded);
  return cudaGetLastError();
}

}  // namespace xattn::kernels
