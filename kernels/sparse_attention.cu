// Block-sparse flash attention, forward (v1: mma.sync, sm_80+; correct first).
//
// CTA = one query block of 128 rows of one (batch, head): 8 warps x 16 rows. It walks the row's
// kept key blocks from the compact index list (ascending), 64 keys at a time: S = Q K^T with
// mma.sync m16n8k16 (Q fragments held in registers), masked (causal with offset, key lengths,
// tails), online softmax in the log2 domain, then O += P V with P taken straight from the S
// accumulators as the A operand and V read with ldmatrix.trans. K/V tiles are double-buffered
// with cp.async. Rows with no kept block output zeros and LSE -inf.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>

#include "kernels/ptx.cuh"
#include "kernels/xattn_kernels.h"

namespace xattn::kernels {
namespace {

using namespace ptx;

constexpr int kRows = 128;     // query rows per CTA (the block size)
constexpr int kKeys = 64;      // keys per tile
constexpr int kThreads = 256;  // 8 warps x 16 rows
constexpr float kLog2e = 1.4426950408889634f;

template <typename T, int D>
__global__ void __launch_bounds__(kThreads) sparse_attention_kernel(const AttentionParams p) {
  constexpr int kLd = D + 8;  // padded smem rows: ldmatrix rows fall in distinct banks
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* sq = reinterpret_cast<T*>(smem_raw);  // [kRows][kLd]
  T* sk = sq + kRows * kLd;                // [2][kKeys][kLd]
  T* sv = sk + 2 * kKeys * kLd;            // [2][kKeys][kLd]

  const int I = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int hk = h / (p.q_heads / p.kv_heads);
  const int qb = (p.q_len + kRows - 1) / kRows, kb = (p.k_len + kRows - 1) / kRows;
  const int len = p.key_lengths ? min(max(p.key_lengths[b], 0), p.k_len) : p.k_len;
  const int off = p.causal ? p.k_len - p.q_len : 0;
  const int64_t row_id = (static_cast<int64_t>(b) * p.q_heads + h) * qb + I;
  const int count = p.counts[row_id];
  const int32_t* idx = p.indices + row_id * kb;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, c = lane % 4;
  const int r0 = I * kRows;

  const T* qg = static_cast<const T*>(p.q) + b * p.q_stride_b + h * p.q_stride_h;
  const T* kg = static_cast<const T*>(p.k) + b * p.k_stride_b + hk * p.k_stride_h;
  const T* vg = static_cast<const T*>(p.v) + b * p.v_stride_b + hk * p.v_stride_h;

  // Q tile once.
  for (int x = threadIdx.x; x < kRows * (D / 8); x += kThreads) {
    const int r = x / (D / 8), col = (x % (D / 8)) * 8;
    const bool ok = r0 + r < p.q_len;
    cp_async16(sq + r * kLd + col, qg + (ok ? (r0 + r) * p.q_stride_l + col : 0), ok);
  }
  cp_async_commit();
  const int tiles = count * (kRows / kKeys);
  auto load_kv = [&](int t, int buf) {
    if (t < tiles) {
      const int key0 = idx[t / (kRows / kKeys)] * kRows + (t % (kRows / kKeys)) * kKeys;
      for (int x = threadIdx.x; x < kKeys * (D / 8); x += kThreads) {
        const int r = x / (D / 8), col = (x % (D / 8)) * 8;
        const int key = key0 + r;
        const bool ok = key < p.k_len;
        cp_async16(sk + (buf * kKeys + r) * kLd + col, kg + (ok ? key * p.k_stride_l + col : 0), ok);
        cp_async16(sv + (buf * kKeys + r) * kLd + col, vg + (ok ? key * p.v_stride_l + col : 0), ok);
      }
    }
    cp_async_commit();
  };
  load_kv(0, 0);
  cp_async_wait<1>();  // Q landed
  __syncthreads();
  // Q fragments of this warp's 16 rows in registers: D/16 k-steps x 4 registers.
  uint32_t qf[D / 16][4];
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk)
    ldmatrix_x4(qf[kk], sq + (warp * 16 + (lane % 8) + ((lane / 8) % 2) * 8) * kLd + kk * 16 + (lane / 16) * 8);

  const float scale2 = p.scale * kLog2e;
  const int row_a = r0 + warp * 16 + g, row_b = row_a + 8;
  float m_a = -INFINITY, m_b = -INFINITY, l_a = 0.f, l_b = 0.f;
  float o[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; ++n)
#pragma unroll
    for (int z = 0; z < 4; ++z) o[n][z] = 0.f;

  for (int t = 0; t < tiles; ++t) {
    const int buf = t & 1;
    load_kv(t + 1, buf ^ 1);
    cp_async_wait<1>();
    __syncthreads();
    const T* kt = sk + buf * kKeys * kLd;
    const T* vt = sv + buf * kKeys * kLd;
    // S = Q K^T for 16 rows x 64 keys.
    float s[8][4];
#pragma unroll
    for (int n = 0; n < 8; ++n)
#pragma unroll
      for (int z = 0; z < 4; ++z) s[n][z] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
#pragma unroll
      for (int pr = 0; pr < 4; ++pr) {
        uint32_t bf[4];
        ldmatrix_x4(bf, kt + (pr * 16 + (lane % 8) + (lane / 16) * 8) * kLd + kk * 16 + ((lane / 8) % 2) * 8);
        mma16816<T>(s[2 * pr], qf[kk], bf[0], bf[1]);
        mma16816<T>(s[2 * pr + 1], qf[kk], bf[2], bf[3]);
      }
    }
    // Mask and online softmax.
    const int key0 = idx[t / (kRows / kKeys)] * kRows + (t % (kRows / kKeys)) * kKeys;
    float tmax_a = -INFINITY, tmax_b = -INFINITY;
#pragma unroll
    for (int n = 0; n < 8; ++n) {
#pragma unroll
      for (int z = 0; z < 4; ++z) {
        const int key = key0 + n * 8 + 2 * c + (z & 1);
        const int row = z < 2 ? row_a : row_b;
        const bool ok = key < len && (!p.causal || key <= row + off);
        s[n][z] = ok ? s[n][z] * scale2 : -INFINITY;
      }
      tmax_a = fmaxf(tmax_a, fmaxf(s[n][0], s[n][1]));
      tmax_b = fmaxf(tmax_b, fmaxf(s[n][2], s[n][3]));
    }
#pragma unroll
    for (int x = 1; x < 4; x <<= 1) {
      tmax_a = fmaxf(tmax_a, __shfl_xor_sync(0xffffffffu, tmax_a, x));
      tmax_b = fmaxf(tmax_b, __shfl_xor_sync(0xffffffffu, tmax_b, x));
    }
    const float nm_a = fmaxf(m_a, tmax_a), nm_b = fmaxf(m_b, tmax_b);
    const float fa = nm_a == -INFINITY ? 0.f : exp2f(m_a - nm_a), fb = nm_b == -INFINITY ? 0.f : exp2f(m_b - nm_b);
    l_a *= fa;
    l_b *= fb;
#pragma unroll
    for (int n = 0; n < D / 8; ++n) {
      o[n][0] *= fa, o[n][1] *= fa, o[n][2] *= fb, o[n][3] *= fb;
    }
#pragma unroll
    for (int n = 0; n < 8; ++n) {
      s[n][0] = nm_a == -INFINITY ? 0.f : exp2f(s[n][0] - nm_a);
      s[n][1] = nm_a == -INFINITY ? 0.f : exp2f(s[n][1] - nm_a);
      s[n][2] = nm_b == -INFINITY ? 0.f : exp2f(s[n][2] - nm_b);
      s[n][3] = nm_b == -INFINITY ? 0.f : exp2f(s[n][3] - nm_b);
      l_a += s[n][0] + s[n][1];
      l_b += s[n][2] + s[n][3];
    }
    m_a = nm_a;
    m_b = nm_b;
    // O += P V: P (16 x 64) from the S accumulators as A operands, V^T fragments by ldmatrix.trans.
#pragma unroll
    for (int kk = 0; kk < kKeys / 16; ++kk) {
      uint32_t a[4];
      a[0] = pack2<T>(s[2 * kk][0], s[2 * kk][1]);
      a[1] = pack2<T>(s[2 * kk][2], s[2 * kk][3]);
      a[2] = pack2<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]);
      a[3] = pack2<T>(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
      for (int pr = 0; pr < D / 16; ++pr) {
        uint32_t bf[4];
        ldmatrix_x4_trans(bf, vt + (kk * 16 + (lane % 8) + ((lane / 8) % 2) * 8) * kLd + pr * 16 + (lane / 16) * 8);
        mma16816<T>(o[2 * pr], a, bf[0], bf[1]);
        mma16816<T>(o[2 * pr + 1], a, bf[2], bf[3]);
      }
    }
    __syncthreads();  // buffer `buf` is refilled next iteration
  }
  cp_async_wait<0>();

#pragma unroll
  for (int x = 1; x < 4; x <<= 1) {
    l_a += __shfl_xor_sync(0xffffffffu, l_a, x);
    l_b += __shfl_xor_sync(0xffffffffu, l_b, x);
  }
  const float ia = l_a > 0.f ? 1.f / l_a : 0.f, ib = l_b > 0.f ? 1.f / l_b : 0.f;
  T* og = static_cast<T*>(p.o) + b * p.o_stride_b + h * p.o_stride_h;
#pragma unroll
  for (int n = 0; n < D / 8; ++n) {
    const int col = n * 8 + 2 * c;
    if (row_a < p.q_len) {
      og[row_a * p.o_stride_l + col] = from_float<T>(o[n][0] * ia);
      og[row_a * p.o_stride_l + col + 1] = from_float<T>(o[n][1] * ia);
    }
    if (row_b < p.q_len) {
      og[row_b * p.o_stride_l + col] = from_float<T>(o[n][2] * ib);
      og[row_b * p.o_stride_l + col + 1] = from_float<T>(o[n][3] * ib);
    }
  }
  if (p.lse && c == 0) {
    float* lse = p.lse + (static_cast<int64_t>(b) * p.q_heads + h) * p.q_len;
    if (row_a < p.q_len) lse[row_a] = l_a > 0.f ? (m_a + log2f(l_a)) / kLog2e : -INFINITY;
    if (row_b < p.q_len) lse[row_b] = l_b > 0.f ? (m_b + log2f(l_b)) / kLog2e : -INFINITY;
  }
}

template <typename T, int D>
cudaError_t launch(const AttentionParams& p, cudaStream_t stream) {
  const size_t smem = static_cast<size_t>(kRows + 4 * kKeys) * (D + 8) * sizeof(T);
  cudaError_t e = cudaFuncSetAttribute(sparse_attention_kernel<T, D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(smem));
  if (e != cudaSuccess) return e;
  dim3 grid((p.q_len + kRows - 1) / kRows, p.q_heads, p.batch);
  sparse_attention_kernel<T, D><<<grid, kThreads, smem, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace

cudaError_t block_sparse_attention_sm90(const AttentionParams& p, cudaStream_t stream);

cudaError_t block_sparse_attention(const AttentionParams& p, cudaStream_t stream) {
  if (!p.q || !p.k || !p.v || !p.o || !p.indices || !p.counts) return cudaErrorInvalidValue;
  if (p.block_size != kRows || (p.head_dim != 64 && p.head_dim != 128)) return cudaErrorInvalidValue;
  if (p.batch <= 0 || p.q_len <= 0 || p.k_len <= 0 || p.kv_heads <= 0 || p.q_heads % p.kv_heads != 0)
    return cudaErrorInvalidValue;
  if (p.causal && p.k_len < p.q_len) return cudaErrorInvalidValue;
  // Hopper: the wgmma kernel (sparse_attention_sm90.cu); mma.sync everywhere else.
  int dev = 0, major = 0;
  if (p.impl != AttentionImpl::kMmaSync && cudaGetDevice(&dev) == cudaSuccess &&
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess && major == 9)
    return block_sparse_attention_sm90(p, stream);
  if (p.impl == AttentionImpl::kWgmma || p.impl == AttentionImpl::kWgmmaCpAsync || p.impl == AttentionImpl::kWgmmaInline)
    return cudaErrorInvalidDeviceFunction;
  const bool bf = p.dtype == DType::kBF16;
  if (p.head_dim == 128) return bf ? launch<__nv_bfloat16, 128>(p, stream) : launch<__half, 128>(p, stream);
  return bf ? launch<__nv_bfloat16, 64>(p, stream) : launch<__half, 64>(p, stream);
}

}  // namespace xattn::kernels
