// Antidiagonal block scores on the GPU, without materialising the (L/S)^2 logits.
//
// The reshaped product (spec §1) is a GEMM: rows are query groups i (Q_r[i] = concat_t
// q[iS+S-1-t]), columns key groups j (K_r[j] = concat_t k[jS+t]), reduction S*D. Tiles are
// gathered straight from q and k with cp.async (a K-chunk of 64 elements is 64 contiguous
// head_dim values of one token), multiplied with mma.sync m16n8k16 (bf16/fp16 in, fp32
// accumulate; valid on sm_80 and sm_90).
//
// Softmax over a whole reshaped row needs the row's normaliser before any block sum can be
// formed. Single pass (v2): for each tile of 64 key groups, each row's probabilities are summed
// per key block relative to the row's running max after that tile; the sums go to a workspace
// (Kb floats per row) with the running max of each (row, tile). At the end the CTA rescales its
// own rows' sums by exp2(max_after_tile - final_max) / final_sum and adds them up per block.
// Cost: one GEMM plus ~2 x 4 B x (Lq/S) x Kb per head of workspace traffic (1.3 GB at 118,784
// tokens and 24 heads, about 1 ms) instead of v1's second GEMM (v1: two passes, ~100 ms each
// there; kernels/NOTES.md).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>

#include "kernels/ptx.cuh"
#include "kernels/score_common.cuh"
#include "kernels/xattn_kernels.h"

namespace xattn::kernels {
namespace {

using namespace ptx;

constexpr int kBM = 128;          // query groups per CTA (4 warps x 32)
constexpr int kBN = 64;           // key groups per tile
constexpr int kBK = 64;           // reduction chunk: 64 head_dim values of one token
constexpr int kLds = kBK + 8;     // padded smem row (144 B): ldmatrix rows fall in distinct banks
constexpr int kStages = 3;        // cp.async pipeline depth
constexpr int kThreads = 128;
constexpr float kLog2e = 1.4426950408889634f;

struct Smem {
  alignas(16) uint16_t q[kStages][kBM][kLds];
  alignas(16) uint16_t k[kStages][kBN][kLds];
  float acc[kBM][kBN / 2];  // one tile's block sums per row (groups per block >= 2)
  float row_max[kBM];
  float row_sum[kBM];
};

template <typename T>
__global__ void __launch_bounds__(kThreads) score_kernel(const ScoreParams p) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  Smem& sm = *reinterpret_cast<Smem*>(smem_raw);
  ScoreTile tile_geo;
  if (!score_tile_setup<kBM>(p, tile_geo)) return;
  const int S = tile_geo.S, nq = tile_geo.nq, i0 = tile_geo.i0, h = tile_geo.h, b = tile_geo.b, hk = tile_geo.hk;
  const int off = tile_geo.off, gpb = tile_geo.gpb, kb_count = tile_geo.kb_count, j_end = tile_geo.j_end;
  const int64_t ws_row = tile_geo.ws_row;
  float* ws = tile_geo.ws;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, c = lane % 4;
  // This thread's four rows within the CTA: warp*32 + 16*ms + 8*hh + g for ms, hh in {0, 1}.
  int rloc[4];
#pragma unroll
  for (int rr = 0; rr < 4; ++rr) rloc[rr] = warp * 32 + 16 * (rr / 2) + 8 * (rr % 2) + g;

  const T* qbase = static_cast<const T*>(p.q) + b * p.q_stride_b + h * p.q_stride_h;
  const T* kbase = static_cast<const T*>(p.k) + b * p.k_stride_b + hk * p.k_stride_h;
  const int chunks_per_tile = S * p.head_dim / kBK;
  const int n_tiles = (j_end + kBN - 1) / kBN;
  const int total = n_tiles * chunks_per_tile;

  // Issues the cp.async loads of flattened iteration `it` into stage `st` (one commit group,
  // possibly empty, per call so that wait_group counts stay aligned).
  auto load = [&](int it, int st) {
    if (it < total) {
      const int tile = it / chunks_per_tile, chunk = it % chunks_per_tile;
      const int e = chunk * kBK;
      const int t = e / p.head_dim, d0 = e % p.head_dim;
      const int j0 = tile * kBN;
#pragma unroll
      for (int v = 0; v < (kBM * kBK / 8) / kThreads; ++v) {
        const int idx = threadIdx.x + v * kThreads;
        const int r = idx / (kBK / 8), col = (idx % (kBK / 8)) * 8;
        const int i = i0 + r;
        const int tok = i * S + S - 1 - t;
        const bool ok = i < nq && tok < p.q_len;
        cp_async16(&sm.q[st][r][col], qbase + (ok ? tok * p.q_stride_l + d0 + col : 0), ok);
      }
#pragma unroll
      for (int v = 0; v < (kBN * kBK / 8) / kThreads; ++v) {
        const int idx = threadIdx.x + v * kThreads;
        const int r = idx / (kBK / 8), col = (idx % (kBK / 8)) * 8;
        const int j = j0 + r;
        const int ktok = j * S + t;
        const bool kok = j < j_end && ktok < p.k_len;
        cp_async16(&sm.k[st][r][col], kbase + (kok ? ktok * p.k_stride_l + d0 + col : 0), kok);
      }
    }
    cp_async_commit();
  };

  const float scale2 = p.scale / static_cast<float>(S) * kLog2e;  // mean of S logits, log2 domain
  float m[4], l[4];  // running max and sum per row
#pragma unroll
  for (int rr = 0; rr < 4; ++rr) m[rr] = -INFINITY, l[rr] = 0.f;
  for (int x = threadIdx.x; x < kBM * (kBN / 2); x += kThreads) (&sm.acc[0][0])[x] = 0.f;
  float acc[2][8][4];
#pragma unroll
  for (int ms = 0; ms < 2; ++ms)
#pragma unroll
    for (int n = 0; n < 8; ++n)
#pragma unroll
      for (int z = 0; z < 4; ++z) acc[ms][n][z] = 0.f;

#pragma unroll
  for (int st = 0; st < kStages - 1; ++st) load(st, st);
  for (int it = 0; it < total; ++it) {
    const int st = it % kStages;
    cp_async_wait<kStages - 2>();  // iteration `it` has landed
    __syncthreads();               // ... for every thread; and stage (it-1) % kStages is free
    load(it + kStages - 1, (it + kStages - 1) % kStages);
#pragma unroll
    for (int kk = 0; kk < kBK; kk += 16) {
      uint32_t a[2][4];
#pragma unroll
      for (int ms = 0; ms < 2; ++ms)
        ldmatrix_x4(a[ms], &sm.q[st][warp * 32 + ms * 16 + (lane % 8) + ((lane / 8) % 2) * 8][kk + (lane / 16) * 8]);
#pragma unroll
      for (int pr = 0; pr < 4; ++pr) {
        uint32_t bf[4];
        ldmatrix_x4(bf, &sm.k[st][pr * 16 + (lane % 8) + (lane / 16) * 8][kk + ((lane / 8) % 2) * 8]);
#pragma unroll
        for (int ms = 0; ms < 2; ++ms) {
          mma16816<T>(acc[ms][2 * pr], a[ms], bf[0], bf[1]);
          mma16816<T>(acc[ms][2 * pr + 1], a[ms], bf[2], bf[3]);
        }
      }
    }

    if (it % chunks_per_tile != chunks_per_tile - 1) continue;
    // ---- epilogue of one 128 x 64 tile of logits ----
    const int tile = it / chunks_per_tile;
    const int j0 = tile * kBN;
    // Masked logit in the log2 domain: key groups without valid keys, causal future.
    auto logit = [&](int row, int j, float x) -> float {
      if (j >= j_end || row >= nq) return -INFINITY;
      if (p.causal && j * S > row * S + off + S - 1) return -INFINITY;
      return x * scale2;
    };
#pragma unroll
    for (int rr = 0; rr < 4; ++rr) {
      const int ms = rr / 2, hh = rr % 2;
      const int row = i0 + rloc[rr];
      float tmax = -INFINITY;
#pragma unroll
      for (int n = 0; n < 8; ++n) {
        const int j = j0 + n * 8 + 2 * c;
        acc[ms][n][2 * hh] = logit(row, j, acc[ms][n][2 * hh]);
        acc[ms][n][2 * hh + 1] = logit(row, j + 1, acc[ms][n][2 * hh + 1]);
        tmax = fmaxf(tmax, fmaxf(acc[ms][n][2 * hh], acc[ms][n][2 * hh + 1]));
      }
      tmax = fmaxf(tmax, __shfl_xor_sync(0xffffffffu, tmax, 1));
      tmax = fmaxf(tmax, __shfl_xor_sync(0xffffffffu, tmax, 2));
      const float nm = fmaxf(m[rr], tmax);
      // Rescale the running sum (exp2(-inf - -inf) would be NaN: guard rows with nothing yet).
      l[rr] = (nm == -INFINITY) ? 0.f : l[rr] * exp2f(m[rr] - nm);
      float part[8];
#pragma unroll
      for (int n = 0; n < 8; ++n) {
        part[n] = (nm == -INFINITY) ? 0.f
                                    : exp2f(acc[ms][n][2 * hh] - nm) + exp2f(acc[ms][n][2 * hh + 1] - nm);
        l[rr] += part[n];
      }
      m[rr] = nm;
      if (gpb >= 8) {
        // The quad's 8 columns of an n8 tile share a key block: reduce in registers, then one
        // thread per row adds to its own row (no other thread writes it: no atomics).
#pragma unroll
        for (int n = 0; n < 8; ++n) {
          part[n] += __shfl_xor_sync(0xffffffffu, part[n], 1);
          part[n] += __shfl_xor_sync(0xffffffffu, part[n], 2);
        }
        if (c == 0) {
#pragma unroll
          for (int n = 0; n < 8; ++n) sm.acc[rloc[rr]][(n * 8) / gpb] += part[n];
        }
      } else {
#pragma unroll
        for (int n = 0; n < 8; ++n)
          if (part[n] != 0.f) atomicAdd(&sm.acc[rloc[rr]][(n * 8 + 2 * c) / gpb], part[n]);
      }
    }
    __syncthreads();
    // This tile's block sums (relative to the running max after it) and that max, per row.
    const int nkb = kBN / gpb;
    for (int x = threadIdx.x; x < kBM * nkb; x += kThreads) {
      const int r = x / nkb, kbl = x % nkb;
      const int J = j0 / gpb + kbl;
      if (i0 + r < nq && J < kb_count) ws[static_cast<int64_t>(i0 + r) * ws_row + J] = sm.acc[r][kbl];
      sm.acc[r][kbl] = 0.f;
    }
    if (c == 0) {
#pragma unroll
      for (int rr = 0; rr < 4; ++rr)
        if (i0 + rloc[rr] < nq) ws[static_cast<int64_t>(i0 + rloc[rr]) * ws_row + kb_count + tile] = m[rr];
    }
    // The next write of sm.acc comes after at least one __syncthreads at the loop top.
#pragma unroll
    for (int ms = 0; ms < 2; ++ms)
#pragma unroll
      for (int n = 0; n < 8; ++n)
#pragma unroll
        for (int z = 0; z < 4; ++z) acc[ms][n][z] = 0.f;
  }
  cp_async_wait<0>();

  // Final normaliser per row: the quad's partial sums share the running max.
#pragma unroll
  for (int rr = 0; rr < 4; ++rr) {
    l[rr] += __shfl_xor_sync(0xffffffffu, l[rr], 1);
    l[rr] += __shfl_xor_sync(0xffffffffu, l[rr], 2);
    if (c == 0) {
      sm.row_max[rloc[rr]] = m[rr];
      sm.row_sum[rloc[rr]] = l[rr];
    }
  }
  __syncthreads();
  score_finalize<kBM, kBN>(p, tile_geo, n_tiles, sm.row_max, sm.row_sum);
}

template <typename T>
cudaError_t launch(const ScoreParams& p, cudaStream_t stream) {
  const int nq = (p.q_len + p.stride - 1) / p.stride;
  dim3 grid((nq + kBM - 1) / kBM, p.q_heads, p.batch);
  const size_t smem = sizeof(Smem);
  cudaError_t e =
      cudaFuncSetAttribute(score_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
  if (e != cudaSuccess) return e;
  score_kernel<T><<<grid, kThreads, smem, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace

size_t antidiagonal_workspace_bytes(int batch, int q_heads, int q_len, int k_len, int stride, int block_size) {
  return static_cast<size_t>(batch) * q_heads * ((q_len + stride - 1) / stride) *
         static_cast<size_t>(score_ws_row_floats(k_len, stride, block_size)) * sizeof(float);
}

cudaError_t antidiagonal_scores_sm90(const ScoreParams& p, const SelectParams* sel, bool* selected,
                                     cudaStream_t stream);

namespace {
// The scores, through the wgmma kernel on Hopper (which may also run the selection `sel`, then
// *selected = true), else the mma.sync kernel.
cudaError_t scores_impl(const ScoreParams& p, const SelectParams* sel, bool* selected, cudaStream_t stream) {
  *selected = false;
  if (!p.q || !p.k || !p.scores || !p.workspace) return cudaErrorInvalidValue;
  if (p.stride < 2 || p.block_size % p.stride != 0 || p.block_size / p.stride < 2) return cudaErrorInvalidValue;
  if (kBM % (p.block_size / p.stride) != 0 || kBN % (p.block_size / p.stride) != 0) return cudaErrorInvalidValue;
  if (p.head_dim % kBK != 0 || p.kv_heads <= 0 || p.q_heads % p.kv_heads != 0) return cudaErrorInvalidValue;
  if (p.batch <= 0 || p.q_len <= 0 || p.k_len <= 0) return cudaErrorInvalidValue;
  if (p.causal && p.k_len < p.q_len) return cudaErrorInvalidValue;
  // Hopper: wgmma kernel when a block holds >= 4 key groups (all but stride 32 with block 64) and
  // the softmax scale is positive (the usual case; it folds the scale into the exponent).
  int dev = 0, major = 0;
  if (p.impl != ScoreImpl::kMmaSync && antidiagonal_sm90_groups_ok(p.block_size, p.stride) && p.scale > 0.f &&
      cudaGetDevice(&dev) == cudaSuccess &&
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess && major == 9)
    return antidiagonal_scores_sm90(p, sel, selected, stream);
  if (p.impl == ScoreImpl::kWgmma) return cudaErrorInvalidDeviceFunction;
  return p.dtype == DType::kBF16 ? launch<__nv_bfloat16>(p, stream) : launch<__half>(p, stream);
}
}  // namespace

cudaError_t antidiagonal_scores(const ScoreParams& p, cudaStream_t stream) {
  bool selected = false;
  return scores_impl(p, nullptr, &selected, stream);
}

cudaError_t estimate_blocks(const ScoreParams& sp, const SelectParams& sel, cudaStream_t stream, bool* fused) {
  bool selected = false;
  if (fused) *fused = false;
  if (sel.scores != sp.scores) return cudaErrorInvalidValue;
  const cudaError_t e = scores_impl(sp, &sel, &selected, stream);
  if (fused) *fused = selected;
  if (e != cudaSuccess || selected) return e;
  return select_blocks(sel, stream);
}

}  // namespace xattn::kernels
