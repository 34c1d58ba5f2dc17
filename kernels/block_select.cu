// Block selection on the GPU. Each (batch, head, query block) row orders its key blocks as the
// reference does (forced first, then by score, blocks that cannot be computed last; ties by index,
// like a stable sort), prefix sums give the mass kept before each candidate, and the kept set is
// written as a bool mask and as ascending index lists. No host round trip; graph-capturable.
//
// Rows of up to 512 reachable key blocks (causal rows up to 64K tokens at block 128) take one
// warp each: a bitonic sort of 64-bit keys (score bits, then the inverted index, so one unsigned
// compare gives score-descending, index-ascending order) in registers and shuffles, 32 * E
// elements, E per lane. For 256 blocks that is 36 compare-exchange steps, 15 of them across lanes,
// against a 256-thread CUB radix sort per row (eight 4-bit passes with block barriers). Longer
// rows keep the CTA-wide radix sort. A last small kernel sums the per-head statistics.
#include <cub/block/block_radix_sort.cuh>
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/xattn_kernels.h"

namespace xattn::kernels {
namespace {

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
  if (p.selection == Selection::kTopRatio) return max(1, static_cast<int>(ceilf(p.top_ratio * n_allowed)));
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

// Rows [first_row, first_row + rows) of every (batch, head), each reaching at most 32 * EMax
// blocks; a warp sorts 32 * E of them, the smallest E that holds its row. Rows up to 256 blocks
// (EMax 8) have an instance of their own at 76 registers, 1.5x the warps per SM of the 512-block
// one. (E = 32 for up to 1024 blocks was tried: 64 live registers of keys, two warps per
// scheduler; it ran slower than the CUB sort.)
template <int EMax>
__global__ void __launch_bounds__(32 * kWarpRows, EMax <= 8 ? 6 : 3)
    select_warp_kernel(const SelectParams p, int first_row, int rows) {
  __shared__ uint8_t flag[kWarpRows][32 * EMax];
  const int w = static_cast<int>(threadIdx.x) >> 5;
  const int I = first_row + static_cast<int>(blockIdx.x) * kWarpRows + w;
  if (I >= first_row + rows) return;
  const RowGeometry g(p, blockIdx.z, blockIdx.y, I);
  const float tau = p.head_threshold ? p.head_threshold[blockIdx.y] : p.threshold;
  const int r = g.reach();
  if (r <= 32) select_row_warp<1>(p, g, tau, flag[w]);
  else if (r <= 64) select_row_warp<2>(p, g, tau, flag[w]);
  else if (r <= 128) select_row_warp<4>(p, g, tau, flag[w]);
  else if (EMax == 8 || r <= 256) select_row_warp<8>(p, g, tau, flag[w]);
  else select_row_warp<EMax>(p, g, tau, flag[w]);
}

// ---- Longer rows: one CTA per row, CUB's block radix sort ----------------------------------------

constexpr int kThreads = 256;

// Each thread holds IPT key blocks. CUB's block radix sort is stable, so equal keys keep ascending
// block order, as the reference's stable sort does. Rows first_row + blockIdx.x. Key blocks at or
// past kThreads * IPT are never computable for these rows (the host launches causal rows by how
// many blocks they can reach), so they are only marked as not kept.
template <int IPT>
__global__ void __launch_bounds__(kThreads) select_kernel(const SelectParams p, int first_row) {
  using Sort = cub::BlockRadixSort<float, kThreads, IPT, int>;
  using ScanF = cub::BlockScan<float, kThreads>;
  using ScanI = cub::BlockScan<int, kThreads>;
  __shared__ union {
    typename Sort::TempStorage sort;
    struct {
      typename ScanF::TempStorage scan_f;
      typename ScanI::TempStorage scan_i;
      int flag[kThreads * IPT];  // kept flag by key block
    } post;
  } tmp;

  const int I = first_row + static_cast<int>(blockIdx.x), h = blockIdx.y, b = blockIdx.z;
  const RowGeometry g(p, b, h, I);
  const int kb = g.kb;
  const int64_t row = g.row;
  const float* s = p.scores + row * kb;
  // Order: forced first, then by score, blocks that cannot be computed last, padding after.
  float key[IPT];
  int idx[IPT];
#pragma unroll
  for (int i = 0; i < IPT; ++i) {
    const int J = threadIdx.x * IPT + i;
    idx[i] = J < kb ? J : -1;
    key[i] = J >= kb ? -2.f : g.forced(J) ? INFINITY : g.allowed(J) ? fmaxf(s[J], 0.f) + 0.f : -1.f;  // +0.f: no -0
  }
  Sort(tmp.sort).SortDescending(key, idx);  // blocked: thread t holds positions t*IPT ...
  __syncthreads();                          // the sort's storage is reused below

  float mass[IPT], before[IPT];
  int ok[IPT], dummy[IPT];
#pragma unroll
  for (int i = 0; i < IPT; ++i) {
    ok[i] = g.allowed(idx[i]) ? 1 : 0;
    mass[i] = ok[i] ? fmaxf(s[idx[i]], 0.f) : 0.f;
  }
  int n_allowed = 0;
  ScanI(tmp.post.scan_i).ExclusiveSum(ok, dummy, n_allowed);
  float total = 0.f;
  ScanF(tmp.post.scan_f).ExclusiveSum(mass, before, total);  // mass kept before each position
#pragma unroll
  for (int i = 0; i < IPT; ++i) tmp.post.flag[threadIdx.x * IPT + i] = 0;
  __syncthreads();

  const float tau = p.head_threshold ? p.head_threshold[h] : p.threshold;
  const int limit = position_limit(p, n_allowed, kThreads * IPT);
  float my_kept_mass = 0.f;
#pragma unroll
  for (int i = 0; i < IPT; ++i) {
    const int J = idx[i];
    const bool keep = keep_position(p, tau, threadIdx.x * IPT + i, limit, ok[i] != 0, key[i] == INFINITY,
                                    before[i], total);
    if (keep) my_kept_mass += mass[i];
    if (J >= 0) {
      tmp.post.flag[J] = keep ? 1 : 0;
      p.mask[row * kb + J] = keep;
    }
  }
  for (int J = kThreads * IPT + threadIdx.x; J < kb; J += kThreads) p.mask[row * kb + J] = false;
  __syncthreads();
  // Ascending compact list: rank of each kept block among the kept blocks.
  int f[IPT], rank[IPT];
#pragma unroll
  for (int i = 0; i < IPT; ++i) f[i] = tmp.post.flag[threadIdx.x * IPT + i];
  int kept = 0;
  ScanI(tmp.post.scan_i).ExclusiveSum(f, rank, kept);
  {  // kept and total mass of the row, for the density statistics (no ATen pass over the scores)
    float kept_mass = 0.f, ignored;
    ScanF(tmp.post.scan_f).ExclusiveSum(my_kept_mass, ignored, kept_mass);
    if (threadIdx.x == 0) {
      p.row_mass[2 * row] = kept_mass;
      p.row_mass[2 * row + 1] = total;
    }
  }
#pragma unroll
  for (int i = 0; i < IPT; ++i) {
    const int J = threadIdx.x * IPT + i;
    if (J < kb && f[i]) p.indices[row * kb + rank[i]] = J;
  }
  for (int x = kept + threadIdx.x; x < kb; x += kThreads) p.indices[row * kb + x] = -1;
  if (threadIdx.x == 0) p.counts[row] = kept;
}

// Per-head statistics, one CTA per (batch, head) after the row kernels: kept and computable
// blocks and the kept share of the score mass, summed over the rows in a fixed order (the same
// bits on every run; no atomics, nothing for the caller to clear). Computable blocks follow from
// the geometry alone.
__global__ void __launch_bounds__(kThreads) head_stats_kernel(const SelectParams p) {
  using Reduce = cub::BlockReduce<double, kThreads>;
  using ReduceL = cub::BlockReduce<long long, kThreads>;
  __shared__ union {
    typename Reduce::TempStorage d;
    typename ReduceL::TempStorage l;
  } tmp;
  const int h = blockIdx.x, b = blockIdx.y;
  const int qb = (p.q_len + p.block_size - 1) / p.block_size;
  long long kept = 0, computable = 0;
  double kept_mass = 0.0, total = 0.0;
  for (int I = threadIdx.x; I < qb; I += kThreads) {
    const RowGeometry g(p, b, h, I);
    kept += p.counts[g.row];
    computable += g.allowed_end;
    kept_mass += p.row_mass[2 * g.row];
    total += p.row_mass[2 * g.row + 1];
  }
  kept = ReduceL(tmp.l).Sum(kept);
  __syncthreads();
  computable = ReduceL(tmp.l).Sum(computable);
  __syncthreads();
  kept_mass = Reduce(tmp.d).Sum(kept_mass);
  __syncthreads();
  total = Reduce(tmp.d).Sum(total);
  if (threadIdx.x == 0) {
    const int64_t bh = static_cast<int64_t>(b) * p.heads + h;
    p.kept[bh] = static_cast<int64_t>(kept);
    p.computable[bh] = static_cast<int64_t>(computable);
    p.kept_mass[bh] = kept_mass / fmax(total, 1e-30);
  }
}

// Rows [first_row, first_row + rows), each reaching at most `blocks` key blocks.
cudaError_t launch_rows(const SelectParams& p, int blocks, int first_row, int rows, cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  const dim3 warps((rows + kWarpRows - 1) / kWarpRows, p.heads, p.batch);
  if (blocks <= kWarpMaxBlocks / 2) {
    select_warp_kernel<8><<<warps, 32 * kWarpRows, 0, stream>>>(p, first_row, rows);
  } else if (blocks <= kWarpMaxBlocks) {
    select_warp_kernel<16><<<warps, 32 * kWarpRows, 0, stream>>>(p, first_row, rows);
  } else if (blocks <= 4 * kThreads) {
    select_kernel<4><<<dim3(rows, p.heads, p.batch), kThreads, 0, stream>>>(p, first_row);
  } else if (blocks <= 8 * kThreads) {
    select_kernel<8><<<dim3(rows, p.heads, p.batch), kThreads, 0, stream>>>(p, first_row);
  } else {
    static_assert(16 * kThreads >= kMaxSelectBlocks, "the widest CUB row holds every block");
    select_kernel<16><<<dim3(rows, p.heads, p.batch), kThreads, 0, stream>>>(p, first_row);
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t select_blocks(const SelectParams& p, cudaStream_t stream) {
  if (!p.scores || !p.mask || !p.indices || !p.counts || !p.kept || !p.computable || !p.kept_mass || !p.row_mass)
    return cudaErrorInvalidValue;
  if (p.batch <= 0 || p.heads <= 0 || p.q_len <= 0 || p.k_len <= 0 || p.block_size <= 0) return cudaErrorInvalidValue;
  const int kb = (p.k_len + p.block_size - 1) / p.block_size;
  const int qb = (p.q_len + p.block_size - 1) / p.block_size;
  if (kb > kMaxSelectBlocks) return cudaErrorInvalidValue;
  auto stats = [&] {
    head_stats_kernel<<<dim3(p.heads, p.batch), kThreads, 0, stream>>>(p);
    return cudaGetLastError();
  };
  if (!p.causal) {
    const cudaError_t e = launch_rows(p, kb, 0, qb, stream);
    return e != cudaSuccess ? e : stats();
  }
  // Causal: row I reaches blocks [0, reach(I)), growing with I. Rows reaching at most 256 blocks
  // go to one warp-kernel launch (each warp sizes its sort to its own row), up to 512 to a second;
  // longer rows sort only their prefix with the smallest CUB size that holds it.
  const int off = p.k_len - p.q_len;
  auto reach = [&](int I) {
    const int last_q = std::min((I + 1) * p.block_size, p.q_len) - 1 + off;
    return std::min(kb, last_q / p.block_size + 1);
  };
  int first = 0;
  while (first < qb) {
    const int r = reach(first);
    const int cls = r <= kWarpMaxBlocks / 2 ? kWarpMaxBlocks / 2 : r <= kWarpMaxBlocks ? kWarpMaxBlocks
                    : r <= 4 * kThreads ? 4 * kThreads
                    : r <= 8 * kThreads ? 8 * kThreads : 16 * kThreads;
    int last = first + 1;
    while (last < qb && reach(last) <= cls) ++last;
    const cudaError_t e = launch_rows(p, cls, first, last - first, stream);
    if (e != cudaSuccess) return e;
    first = last;
  }
  return stats();
}

}  // namespace xattn::kernels
