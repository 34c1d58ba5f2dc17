// RMSNorm over the head dimension followed by rotary embedding, in one pass over q or k
// (kernels/xattn_kernels.h, RmsNormRopeParams). One warp per (token, head) row; each lane owns
// D / 32 consecutive values, i.e. whole rotation pairs (2i, 2i + 1).
//
// The rounding follows the ATen composition it replaces (core/ops/fused.cpp), step by step:
// normalise in fp32, round to T; times the weight in fp32, round to T; rotate in fp32 with
// separately rounded products (no FMA contraction); round to T. Only the sum of squares is added
// in another order, so results equal ATen's or differ by one unit in the last place of T.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "kernels/ptx.cuh"
#include "kernels/xattn_kernels.h"

namespace xattn::kernels {
namespace {

using namespace ptx;

template <typename T>
__device__ __forceinline__ float round_t(float v) {
  return to_float(from_float<T>(v));
}

template <typename T, int D>
__global__ void __launch_bounds__(256) rms_norm_rope_kernel(const RmsNormRopeParams p) {
  constexpr int E = D / 32;
  const int lane = threadIdx.x % 32;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  if (row >= p.rows) return;
  const T* x = static_cast<const T*>(p.x) + row * D + lane * E;
  const T* w = static_cast<const T*>(p.weight) + lane * E;
  float f[E];
#pragma unroll
  for (int e = 0; e < E; ++e) f[e] = to_float(x[e]);
  float ss = 0.f;
#pragma unroll
  for (int e = 0; e < E; ++e) ss = __fmaf_rn(f[e], f[e], ss);
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
  const float r = rsqrtf(__fadd_rn(ss / static_cast<float>(D), p.eps));
  float y[E];
#pragma unroll
  for (int e = 0; e < E; ++e) y[e] = round_t<T>(__fmul_rn(round_t<T>(__fmul_rn(f[e], r)), to_float(w[e])));
  if (p.cos) {
    const int64_t pos = (row / p.heads) % p.seq_len;
    const float* cs = p.cos + pos * D + lane * E;
    const float* sn = p.sin + pos * D + lane * E;
#pragma unroll
    for (int e = 0; e < E; e += 2) {
      const float a = y[e], b = y[e + 1];
      y[e] = __fadd_rn(__fmul_rn(a, cs[e]), __fmul_rn(-b, sn[e]));
      y[e + 1] = __fadd_rn(__fmul_rn(b, cs[e + 1]), __fmul_rn(a, sn[e + 1]));
    }
  }
  T* out = static_cast<T*>(p.out) + row * D + lane * E;
#pragma unroll
  for (int e = 0; e < E; ++e) out[e] = from_float<T>(y[e]);
}

template <typename T>
cudaError_t launch(const RmsNormRopeParams& p, cudaStream_t stream) {
  constexpr int kWarps = 8;
  const unsigned blocks = static_cast<unsigned>((p.rows + kWarps - 1) / kWarps);
  if (p.head_dim == 128) rms_norm_rope_kernel<T, 128><<<blocks, kWarps * 32, 0, stream>>>(p);
  else rms_norm_rope_kernel<T, 64><<<blocks, kWarps * 32, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace

cudaError_t rms_norm_rope(const RmsNormRopeParams& p, cudaStream_t stream) {
  if (!p.x || !p.out || !p.weight || p.rows < 0 || (p.head_dim != 64 && p.head_dim != 128)) return cudaErrorInvalidValue;
  if (p.cos && (!p.sin || p.heads <= 0 || p.seq_len <= 0)) return cudaErrorInvalidValue;
  if (p.rows == 0) return cudaSuccess;
  return p.dtype == DType::kBF16 ? launch<__nv_bfloat16>(p, stream) : launch<__half>(p, stream);
}

}  // namespace xattn::kernels
