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

#include "kernels/select_common.cuh"
#include "kernels/xattn_kernels.h"

namespace xattn::kernels {
using namespace select_detail;
namespace {

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
  select_row<EMax>(p, blockIdx.z, blockIdx.y, I, flag[w]);
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
  if (!select_params_ok(p)) return cudaErrorInvalidValue;
  const int kb = (p.k_len + p.block_size - 1) / p.block_size;
  const int qb = (p.q_len + p.block_size - 1) / p.block_size;
  auto stats = [&] { return launch_head_stats(p, stream); };
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

namespace select_detail {

bool select_params_ok(const SelectParams& p) {
  if (!p.scores || !p.mask || !p.indices || !p.counts || !p.kept || !p.computable || !p.kept_mass || !p.row_mass)
    return false;
  if (p.batch <= 0 || p.heads <= 0 || p.q_len <= 0 || p.k_len <= 0 || p.block_size <= 0) return false;
  return (p.k_len + p.block_size - 1) / p.block_size <= kMaxSelectBlocks;
}

cudaError_t launch_head_stats(const SelectParams& p, cudaStream_t stream) {
  head_stats_kernel<<<dim3(p.heads, p.batch), kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace select_detail
}  // namespace xattn::kernels
