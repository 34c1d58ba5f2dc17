// The warp-per-row block selection (kernels/block_select.cu), shared with the scoring kernel that
// finishes a split launch and selects each row in the same kernel (antidiag_score_sm90.cu).
#pragma once

#include <cstdint>

#include "kernels/xattn_kernels.h"

namespace xattn::kernels::select_detail {

// Where one (batch, head, query block) row may look: key length, causal diagonal, forced blocks.
struct RowGeometry {
  int bs, kb, len, first_q, last_q;
  int allowed_end;         // allowed(J) <=> 0 <= J < allowed_end
  int diag_lo, diag_hi;    // the causal diagonal's blocks
  bool causal, sink, diagonal;
  int64_t row;  // index of the row in [B, H, Qb]

  __device__ RowGeometry(const SelectParams& p, int b, int h, int I) {
    bs = p.block_size;
    const int qb = (p.q_len + bs - 1) / bs;
    kb = (p.k_len + bs - 1) / bs;
    len = p.key_lengths ? min(max(p.key_lengths[b], 0), p.k_len) : p.k_len;
    const int off = p.causal ? p.k_len - p.q_len : 0;
    first_q = I * bs + off;
    last_q = min((I + 1) * bs, p.q_len) - 1 + off;
    causal = p.causal, sink = p.force_sink, diagonal = p.force_diagonal;
    row = (static_cast<int64_t>(b) * p.heads + h) * qb + I;
    // J < kb, J * bs < len and (causal) J * bs <= last_q, as one bound (no division per block).
    allowed_end = min(kb, (len + bs - 1) / bs);
    if (causal) allowed_end = last_q < 0 ? 0 : min(allowed_end, last_q / bs + 1);
    diag_lo = first_q / bs, diag_hi = last_q / bs;
  }
  __device__ bool allowed(int J) const { return J >= 0 && J < allowed_end; }
  __device__ bool forced(int J) const {
    if (!causal || !allowed(J)) return false;
    return (sink && J == 0) || (diagonal && J >= diag_lo && J <= diag_hi);
  }
  // Key blocks [0, reach) hold every block this row can compute.
  __device__ int reach() const { return causal ? min(kb, last_q / bs + 1) : kb; }
};

// How many sorted positions top-k / top-ratio keep (threshold selection: no limit).
__device__ inline int position_limit(const SelectParams& p, int n_allowed, int capacity) {
  if (p.selection == Selection::kTopK) return p.top_k;
  if (p.selection == Selection::kTopRatio) return max(1, static_cast<int>(ceil(p.top_ratio * n_allowed)));
  return capacity;
}

// Whether the block at sorted position `pos` is kept, given the mass of the positions before it.
__device__ inline bool keep_position(const SelectParams& p, float tau, int pos, int limit, bool ok, bool forced,
                                     float before, float total) {
  if (!ok) return false;
  if (forced) return true;
  if (p.selection == Selection::kThreshold) return before < tau * total || tau >= 1.f || (!p.causal && pos == 0);
  return pos < limit;
}

// ---- Rows of up to 512 reachable blocks: one warp per row --------------------------------------

constexpr int kWarpRows = 4;           // rows (warps) per CTA, all of one (batch, head)
constexpr int kWarpMaxBlocks = 512;    // 32 lanes x E = 16 elements at most

// Sort key: forced blocks above every score, computable blocks by score (non-negative floats
// order like their bits; +1 keeps them above 0), the rest 0; the low word is ~J, so equal high
// words put the smaller index first when sorting descending.
__device__ inline uint64_t sort_key(const RowGeometry& g, const float* s, int J) {
  uint32_t hi = 0;
  if (J < g.kb) {
    if (g.forced(J)) hi = 0xFFFFFFFFu;
    else if (g.allowed(J)) hi = __float_as_uint(fmaxf(s[J], 0.f) + 0.f) + 1u;  // +0.f: no -0
  }
  return (static_cast<uint64_t>(hi) << 32) | static_cast<uint32_t>(~J);
}

// Bitonic sort of 32 * E keys, descending. Position lane * E + i lives in register i of `lane`;
// partners closer than E are in the same lane, the others one shuffle away.
template <int E>
__device__ inline void warp_sort_descending(uint64_t (&v)[E], int lane) {
  constexpr int kLog = (E == 1 ? 0 : E == 2 ? 1 : E == 4 ? 2 : E == 8 ? 3 : E == 16 ? 4 : 5) + 5;
#pragma unroll
  for (int lk = 1; lk <= kLog; ++lk) {
    const int k = 1 << lk;
#pragma unroll
    for (int lj = lk - 1; lj >= 0; --lj) {
      const int j = 1 << lj;
      if (j >= E) {
#pragma unroll
        for (int i = 0; i < E; ++i) {
          const int pos = lane * E + i;
          const uint64_t o = __shfl_xor_sync(0xFFFFFFFFu, v[i], j / E);
          const bool take_max = ((pos & j) == 0) == ((pos & k) == 0);
          v[i] = take_max ? (v[i] > o ? v[i] : o) : (v[i] < o ? v[i] : o);
        }
      } else {
#pragma unroll
        for (int i = 0; i < E; ++i) {
          if ((i & j) != 0) continue;
          const bool desc = ((lane * E + i) & k) == 0;
          const uint64_t a = v[i], b = v[i ^ j];
          const uint64_t big = a > b ? a : b, small = a > b ? b : a;
          v[i] = desc ? big : small;
          v[i ^ j] = desc ? small : big;
        }
      }
    }
  }
}

// One row by one warp. `flag` is this warp's shared scratch of 32 * E bytes.
template <int E>
__device__ void select_row_warp(const SelectParams& p, const RowGeometry& g, float tau, uint8_t* flag) {
  constexpr int n = 32 * E;
  const int lane = threadIdx.x & 31;
  const float* s = p.scores + g.row * g.kb;
  uint64_t v[E];
#pragma unroll
  for (int i = 0; i < E; ++i) v[i] = sort_key(g, s, i * 32 + lane);  // coalesced; the sort does not care
  warp_sort_descending<E>(v, lane);

  // Decoding a sorted key: its block, whether it is computable or forced, and its mass. Done
  // twice (sums, then decisions) rather than keeping five arrays of E live across the scan.
  auto decode = [&](uint64_t key, int* J, bool* ok, bool* forced) {
    const uint32_t hi = static_cast<uint32_t>(key >> 32);
    *J = static_cast<int>(~static_cast<uint32_t>(key));
    *ok = hi != 0u;
    *forced = hi == 0xFFFFFFFFu;
    return *forced ? fmaxf(s[*J], 0.f) : *ok ? __uint_as_float(hi - 1u) : 0.f;
  };
  float run = 0.f;
  int allowed = 0;
#pragma unroll
  for (int i = 0; i < E; ++i) {
    int J;
    bool ok, forced;
    run += decode(v[i], &J, &ok, &forced);
    allowed += ok ? 1 : 0;
  }
  // Exclusive scan of the lanes' masses (positions are blocked: lane l holds l * E ...).
  float incl = run;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const float t = __shfl_up_sync(0xFFFFFFFFu, incl, o);
    if (lane >= o) incl += t;
  }
  const float lane_before = __shfl_up_sync(0xFFFFFFFFu, incl, 1);
  const float total = __shfl_sync(0xFFFFFFFFu, incl, 31);
  const int n_allowed = __reduce_add_sync(0xFFFFFFFFu, allowed);
  const int limit = position_limit(p, n_allowed, n);

  float kept_mass = 0.f, before = lane == 0 ? 0.f : lane_before;
#pragma unroll
  for (int i = 0; i < E; ++i) {
    int J;
    bool ok, forced;
    const float mass = decode(v[i], &J, &ok, &forced);
    const bool keep = keep_position(p, tau, lane * E + i, limit, ok, forced, before, total);
    before += mass;
    if (keep) kept_mass += mass;
    flag[J] = keep ? 1 : 0;  // every J in [0, n) sits at exactly one position
  }
  __syncwarp();
  // Mask and ascending index list, 32 consecutive blocks per step.
  bool* mask = p.mask + g.row * g.kb;
  int32_t* idx = p.indices + g.row * g.kb;
  const unsigned below = (1u << lane) - 1u;
  int kept = 0;
#pragma unroll
  for (int i = 0; i < E; ++i) {
    const int J = i * 32 + lane;
    const bool bit = flag[J] != 0;
    const unsigned word = __ballot_sync(0xFFFFFFFFu, bit);
    if (J < g.kb) mask[J] = bit;
    if (bit) idx[kept + __popc(word & below)] = J;
    kept += __popc(word);
  }
  for (int J = n + lane; J < g.kb; J += 32) mask[J] = false;
  for (int x = kept + lane; x < g.kb; x += 32) idx[x] = -1;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) kept_mass += __shfl_xor_sync(0xFFFFFFFFu, kept_mass, o);
  if (lane == 0) {
    p.counts[g.row] = kept;
    p.row_mass[2 * g.row] = kept_mass;
    p.row_mass[2 * g.row + 1] = total;
  }
}

// Row I of (batch b, head h) by one warp: its geometry and tau, and the smallest warp sort that
// holds the blocks it can reach (at most 32 * EMax). `flag`: the warp's 32 * EMax bytes of
// shared scratch.
template <int EMax>
__device__ inline void select_row(const SelectParams& p, int b, int h, int I, uint8_t* flag) {
  const RowGeometry g(p, b, h, I);
  const float tau = p.head_threshold ? p.head_threshold[h] : p.threshold;
  const int r = g.reach();
  if (r <= 32) select_row_warp<1>(p, g, tau, flag);
  else if (r <= 64) select_row_warp<2>(p, g, tau, flag);
  else if (r <= 128) select_row_warp<4>(p, g, tau, flag);
  else if (EMax == 8 || r <= 256) select_row_warp<8>(p, g, tau, flag);
  else select_row_warp<EMax>(p, g, tau, flag);
}

// The SelectParams checks of select_blocks (before any launch).
bool select_params_ok(const SelectParams& p);
// The per-head statistics (kept, computable, kept mass) from the rows' counts and masses; after
// every row is selected.
cudaError_t launch_head_stats(const SelectParams& p, cudaStream_t stream);

}  // namespace xattn::kernels::select_detail
