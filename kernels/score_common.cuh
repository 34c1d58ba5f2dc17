// Shared by the scoring kernels (antidiag_score.cu: mma.sync, antidiag_score_sm90.cu: wgmma):
// the workspace layout, the geometry of one CTA's rows, and the final per-block reduction.
#pragma once

#include <cstdint>

#include "kernels/ptx.cuh"
#include "kernels/xattn_kernels.h"

namespace xattn::kernels {

// Workspace floats per (batch, head, query group): Kb block sums, then one running-max slot
// per 64 key groups (kernels with wider tiles use every (width/64)-th slot; the sm90 kernel, when
// it splits a row's key range over several CTAs, keeps each part's final max and sum in the two
// slots after its first tile's, hence the two spare slots at the end).
__host__ __device__ inline int64_t score_ws_row_floats(int k_len, int stride, int block_size) {
  const int nk = (k_len + stride - 1) / stride;
  const int kb = (k_len + block_size - 1) / block_size;
  return kb + (nk + 63) / 64 + 3;
}

// Query groups per block the wgmma kernel's epilogue handles (antidiag_score_sm90.cu).
__host__ __device__ inline bool antidiagonal_sm90_groups_ok(int block_size, int stride) {
  const int gpb = stride > 0 ? block_size / stride : 0;
  return gpb * stride == block_size && (gpb == 4 || gpb == 8 || gpb == 16 || gpb == 32 || gpb == 64);
}

// What one CTA (kBM query groups of one head) needs to know about its rows.
struct ScoreTile {
  int S = 0, nq = 0, i0 = 0, h = 0, b = 0, hk = 0, off = 0, gpb = 0, qb_count = 0, kb_count = 0;
  int j_end = 0;  // key groups [0, j_end) hold a valid key for at least one of the CTA's rows
  int64_t ws_row = 0;
  float* ws = nullptr;  // this (batch, head)'s workspace
};

// Returns false when the CTA has no rows. bx is the row tile (blockIdx.x unless given) out of
// n_row_tiles (gridDim.x unless given). Causal rows grow longer with i, so the last (longest)
// row tiles are launched first and the short ones fill the tail of the grid.
template <int kBM>
__device__ inline bool score_tile_setup(const ScoreParams& p, ScoreTile& t, int bx = -1, int n_row_tiles = -1) {
  if (bx < 0) bx = static_cast<int>(blockIdx.x);
  if (n_row_tiles < 0) n_row_tiles = static_cast<int>(gridDim.x);
  t.S = p.stride;
  t.nq = (p.q_len + t.S - 1) / t.S;
  t.i0 = (p.causal ? n_row_tiles - 1 - bx : bx) * kBM;
  if (t.i0 >= t.nq) return false;
  t.h = blockIdx.y;
  t.b = blockIdx.z;
  t.hk = t.h / (p.q_heads / p.kv_heads);
  const int len = p.key_lengths ? min(max(p.key_lengths[t.b], 0), p.k_len) : p.k_len;
  t.off = p.causal ? p.k_len - p.q_len : 0;
  t.gpb = p.block_size / t.S;
  t.qb_count = (p.q_len + p.block_size - 1) / p.block_size;
  t.kb_count = (p.k_len + p.block_size - 1) / p.block_size;
  t.j_end = (len + t.S - 1) / t.S;
  if (p.causal) {
    const int i_last = min(t.i0 + kBM, t.nq) - 1;
    t.j_end = min(t.j_end, (i_last * t.S + t.off + t.S - 1) / t.S + 1);
  }
  t.ws_row = score_ws_row_floats(p.k_len, t.S, p.block_size);
  t.ws = static_cast<float*>(p.workspace) + (static_cast<int64_t>(t.b) * p.q_heads + t.h) * t.nq * t.ws_row;
  return true;
}

// A[I, J] = sum over the block's rows of sum_iJ * exp2(max_after_tile - max_i) / sum_i, from the
// workspace written tile by tile (kTileGroups key groups per tile) and each row's final max and
// sum (shared memory), and 0 for the blocks after them. Call after a barrier; threads tid of
// nthreads take part (default: the CTA). Every (I, J) of the CTA's query blocks is written, or,
// with nparts > 1, every nparts-th stretch of nthreads of them from stretch `part` (several CTAs
// sharing one row tile's outputs).
// Memory-bound (the workspace holds a value per query *group*, gpb times the output): each thread
// issues its rows' loads eight at a time, independent of each other, before using any (the first
// version loaded one row per step behind a branch and was latency-bound: 2.5 ms of the 23 ms
// video-720p S 8 estimate, ncu, 2026-11-27); the factor uses ex2.approx and a fast divide, like the
// kernels' epilogues.
template <int kBM, int kTileGroups>
__device__ inline void score_finalize(const ScoreParams& p, const ScoreTile& t, int n_tiles, const float* row_max,
                                      const float* row_sum, int tid = -1, int nthreads = -1, int part = 0,
                                      int nparts = 1) {
  if (tid < 0) tid = static_cast<int>(threadIdx.x), nthreads = static_cast<int>(blockDim.x);
  const int kb_done = min(t.kb_count, n_tiles * (kTileGroups / t.gpb));
  const int nqb = kBM / t.gpb;
  const int gpb = t.gpb;
  const int first = tid + part * nthreads, step = nthreads * nparts;
  for (int x = first; x < nqb * kb_done; x += step) {
    const int qi = x / kb_done, J = x % kb_done;
    const int I = t.i0 / gpb + qi;
    if (I >= t.qb_count) continue;
    const int slot = t.kb_count + (kTileGroups / 64) * ((J * gpb) / kTileGroups);
    const int r0 = qi * gpb;
    const float* w0 = t.ws + static_cast<int64_t>(t.i0 + r0) * t.ws_row;
    float a = 0.f;
    for (int r = 0; r < gpb; r += 8) {
      float v[8], m[8];
#pragma unroll
      for (int u = 0; u < 8; ++u) {
        const bool ok = r + u < gpb && t.i0 + r0 + r + u < t.nq;
        const float* w = w0 + static_cast<int64_t>(ok ? r + u : 0) * t.ws_row;
        v[u] = ok ? w[J] : 0.f;
        m[u] = ok ? w[slot] : 0.f;
      }
#pragma unroll
      for (int u = 0; u < 8; ++u) {
        if (r + u >= gpb) break;
        const float l = row_sum[r0 + r + u];
        if (v[u] != 0.f && l > 0.f) a += __fdividef(v[u] * ptx::fast_exp2(m[u] - row_max[r0 + r + u]), l);
      }
    }
    p.scores[((static_cast<int64_t>(t.b) * p.q_heads + t.h) * t.qb_count + I) * t.kb_count + J] = a;
  }
  // Blocks past the last key tile these rows reach (causal, short key lengths) score 0: written
  // here, so the caller need not clear the whole output first.
  const int kb_rest = t.kb_count - kb_done;
  for (int x = first; x < nqb * kb_rest; x += step) {
    const int qi = x / kb_rest, J = kb_done + x % kb_rest;
    const int I = t.i0 / gpb + qi;
    if (I < t.qb_count) p.scores[((static_cast<int64_t>(t.b) * p.q_heads + t.h) * t.qb_count + I) * t.kb_count + J] = 0.f;
  }
}

}  // namespace xattn::kernels
