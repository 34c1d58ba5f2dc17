// Block selection on the GPU: one CTA per (batch, head, query block) row. The row's key
// blocks are ordered as the reference orders them (forced first, then by score, blocks that
// cannot be computed last; ties by index, like a stable sort) with CUB's block radix sort,
// prefix sums give the mass kept before each candidate, and the kept set is written as a
// bool mask and as ascending index lists. No host round trip; graph-capturable.
#include <cub/block/block_radix_sort.cuh>
#include <cub/block/block_scan.cuh>

#include <algorithm>
#include <cmath>

#include "kernels/xattn_kernels.h"

namespace xattn::kernels {
namespace {

constexpr int kThreads = 256;

// One CTA per row; each thread holds IPT key blocks. CUB's block radix sort is stable, so
// equal keys keep ascending block order, as the reference's stable sort does.
// Rows first_row + blockIdx.x. Key blocks at or past kThreads * IPT are never computable for these
// rows (the host launches causal rows by how many blocks they can reach), so they are only marked
// as not kept.
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
  const int bs = p.block_size;
  const int qb = (p.q_len + bs - 1) / bs, kb = (p.k_len + bs - 1) / bs;
  const int len = p.key_lengths ? min(max(p.key_lengths[b], 0), p.k_len) : p.k_len;
  const int off = p.causal ? p.k_len - p.q_len : 0;
  const int first_q = I * bs + off, last_q = min((I + 1) * bs, p.q_len) - 1 + off;
  const int64_t row = (static_cast<int64_t>(b) * p.heads + h) * qb + I;
  const float* s = p.scores + row * kb;

  auto allowed = [&](int J) { return J >= 0 && J < kb && J * bs < len && (!p.causal || J * bs <= last_q); };
  auto forced = [&](int J) {
    if (!p.causal || !allowed(J)) return false;
    return (p.force_sink && J == 0) || (p.force_diagonal && J >= first_q / bs && J <= last_q / bs);
  };
  // Order: forced first, then by score, blocks that cannot be computed last, padding after.
  float key[IPT];
  int idx[IPT];
#pragma unroll
  for (int i = 0; i < IPT; ++i) {
    const int J = threadIdx.x * IPT + i;
    idx[i] = J < kb ? J : -1;
    key[i] = J >= kb ? -2.f : forced(J) ? INFINITY : allowed(J) ? fmaxf(s[J], 0.f) + 0.f : -1.f;  // +0.f: no -0
  }
  Sort(tmp.sort).SortDescending(key, idx);  // blocked: thread t holds positions t*IPT ...
  __syncthreads();                          // the sort's storage is reused below

  float mass[IPT], before[IPT];
  int ok[IPT], dummy[IPT];
#pragma unroll
  for (int i = 0; i < IPT; ++i) {
    ok[i] = allowed(idx[i]) ? 1 : 0;
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
  int limit = kThreads * IPT;
  if (p.selection == Selection::kTopK) limit = p.top_k;
  if (p.selection == Selection::kTopRatio) limit = max(1, static_cast<int>(ceilf(p.top_ratio * n_allowed)));
  float my_kept_mass = 0.f;
#pragma unroll
  for (int i = 0; i < IPT; ++i) {
    const int pos = threadIdx.x * IPT + i;
    const int J = idx[i];
    bool keep = false;
    if (ok[i]) {
      if (key[i] == INFINITY) {
        keep = true;  // forced
      } else if (p.selection == Selection::kThreshold) {
        keep = before[i] < tau * total || tau >= 1.f || (!p.causal && pos == 0);
      } else {
        keep = pos < limit;
      }
    }
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
  if (p.row_mass) {  // kept and total mass of the row, for the density statistics (no ATen pass over the scores)
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
  if (threadIdx.x == 0) {
    p.counts[row] = kept;
    atomicAdd(p.kept + (static_cast<int64_t>(b) * p.heads + h), static_cast<unsigned long long>(kept));
    atomicAdd(p.computable + (static_cast<int64_t>(b) * p.heads + h), static_cast<unsigned long long>(n_allowed));
  }
}

template <int IPT>
cudaError_t launch(const SelectParams& p, int first_row, int rows, cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  select_kernel<IPT><<<dim3(rows, p.heads, p.batch), kThreads, 0, stream>>>(p, first_row);
  return cudaGetLastError();
}

// Rows [first_row, first_row + rows) with up to `blocks` key blocks to sort.
cudaError_t launch_rows(const SelectParams& p, int blocks, int first_row, int rows, cudaStream_t stream) {
  if (blocks <= kThreads) return launch<1>(p, first_row, rows, stream);
  if (blocks <= 2 * kThreads) return launch<2>(p, first_row, rows, stream);
  if (blocks <= 4 * kThreads) return launch<4>(p, first_row, rows, stream);
  if (blocks <= 8 * kThreads) return launch<8>(p, first_row, rows, stream);
  return launch<16>(p, first_row, rows, stream);
}

}  // namespace

cudaError_t select_blocks(const SelectParams& p, cudaStream_t stream) {
  if (!p.scores || !p.mask || !p.indices || !p.counts || !p.kept || !p.computable) return cudaErrorInvalidValue;
  if (p.batch <= 0 || p.heads <= 0 || p.q_len <= 0 || p.k_len <= 0 || p.block_size <= 0) return cudaErrorInvalidValue;
  const int kb = (p.k_len + p.block_size - 1) / p.block_size;
  const int qb = (p.q_len + p.block_size - 1) / p.block_size;
  if (kb > kMaxSelectBlocks) return cudaErrorInvalidValue;
  if (!p.causal) return launch_rows(p, kb, 0, qb, stream);
  // Causal: row I reaches blocks [0, reach(I)), growing with I; sort only that prefix, with the
  // smallest items-per-thread that holds it (one launch per size class, rows in order).
  const int off = p.k_len - p.q_len;
  auto reach = [&](int I) {
    const int last_q = std::min((I + 1) * p.block_size, p.q_len) - 1 + off;
    return std::min(kb, last_q / p.block_size + 1);
  };
  int first = 0;
  while (first < qb) {
    const int cls = reach(first) <= kThreads ? kThreads : reach(first) <= 2 * kThreads ? 2 * kThreads
                  : reach(first) <= 4 * kThreads ? 4 * kThreads : reach(first) <= 8 * kThreads ? 8 * kThreads
                                                                                             : 16 * kThreads;
    int last = first + 1;
    while (last < qb && reach(last) <= cls) ++last;
    const cudaError_t e = launch_rows(p, cls, first, last - first, stream);
    if (e != cudaSuccess) return e;
    first = last;
  }
  return cudaSuccess;
}

}  // namespace xattn::kernels
