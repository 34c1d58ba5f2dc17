// Antidiagonal block scores on Hopper: the same single-pass algorithm as antidiag_score.cu
// (see there), with the reshaped product on wgmma (sm_90a) instead of mma.sync.
//
// CTA = 2 consumer warpgroups x 64 query groups (BM = 128) against tiles of 128 key groups;
// reduction chunks of 64 head_dim values (128 B rows). Both operands sit in shared memory in
// the canonical 128-byte-swizzled K-major layout (16-byte chunk c of row r stored at chunk
// c ^ (r % 8); tile bases 1024-byte aligned), filled by cp.async from the strided gather and
// read by wgmma.mma_async m64n256k16 through matrix descriptors (SBO = 1024 B between 8-row
// groups; +32 B per k16 step inside the swizzle atom). cp.async writes are generic-proxy
// writes, so each thread fences the async proxy before the barrier that precedes wgmma.
// The accumulator layout per n8 chunk equals mma.sync's, so the epilogue is the same.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdlib>

#include "kernels/ptx.cuh"
#include "kernels/tma.cuh"
#include "kernels/score_common.cuh"
#include "kernels/xattn_kernels.h"

namespace xattn::kernels {
namespace {

#if defined(__CUDA_ARCH__) && (__CUDA_ARCH__ >= 900) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define XATTN_SM90A 1
#endif

constexpr int kBM = 128;           // 2 warpgroups x 64 query groups
constexpr int kBN = 256;           // key groups per tile (m64n256k16)
[[maybe_unused]] constexpr int kAcc = kBN / 2;  // accumulator floats per thread
constexpr int kMinGroupsPerBlock = 4;  // block-sum buffer is kBN / 4 wide
constexpr int kBK = 64;            // 64 bf16 = 128 B = one swizzle atom row
constexpr int kStages = 4;         // with a prefetch distance of 2
constexpr int kThreads = 256;       // consumer threads (2 warpgroups)
constexpr int kTmaThreads = kThreads + 32;  // TMA path: plus one producer warp

#ifdef XATTN_SM90A
using namespace ptx;
constexpr float kLog2e = 1.4426950408889634f;

// 128B-swizzle K-major descriptor: start >> 4, LBO (unused) 1, SBO 1024 B >> 4, mode 1.
__device__ __forceinline__ uint64_t make_desc(uint32_t smem_addr) {
  uint64_t d = 0;
  d |= static_cast<uint64_t>((smem_addr >> 4) & 0x3FFF);
  d |= static_cast<uint64_t>(1) << 16;
  d |= static_cast<uint64_t>(1024 >> 4) << 32;
  d |= static_cast<uint64_t>(1) << 62;
  return d;
}

__device__ __forceinline__ void wgmma_bf16(float (&d)[128], uint64_t desc_a, uint64_t desc_b, int accumulate) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %130, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 "
      "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63,%64,%65,%66,%67,%68,%69,%70,%71,%72,%73,%74,%75,%76,%77,%78,%79,%80,%81,%82,%83,%84,%85,%86,%87,%88,%89,%90,%91,%92,%93,%94,%95,%96,%97,%98,%99,%100,%101,%102,%103,%104,%105,%106,%107,%108,%109,%110,%111,%112,%113,%114,%115,%116,%117,%118,%119,%120,%121,%122,%123,%124,%125,%126,%127}, "
      "%128, %129, p, 1, 1, 0, 0;\n"
      "}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
      : "l"(desc_a), "l"(desc_b), "r"(accumulate));
}
__device__ __forceinline__ void wgmma_f16(float (&d)[128], uint64_t desc_a, uint64_t desc_b, int accumulate) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %130, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n256k16.f32.f16.f16 "
      "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63,%64,%65,%66,%67,%68,%69,%70,%71,%72,%73,%74,%75,%76,%77,%78,%79,%80,%81,%82,%83,%84,%85,%86,%87,%88,%89,%90,%91,%92,%93,%94,%95,%96,%97,%98,%99,%100,%101,%102,%103,%104,%105,%106,%107,%108,%109,%110,%111,%112,%113,%114,%115,%116,%117,%118,%119,%120,%121,%122,%123,%124,%125,%126,%127}, "
      "%128, %129, p, 1, 1, 0, 0;\n"
      "}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
      : "l"(desc_a), "l"(desc_b), "r"(accumulate));
}
template <typename T>
__device__ __forceinline__ void wgmma(float (&d)[kAcc], uint64_t a, uint64_t b, int acc);
template <>
__device__ __forceinline__ void wgmma<__nv_bfloat16>(float (&d)[kAcc], uint64_t a, uint64_t b, int acc) {
  wgmma_bf16(d, a, b, acc);
}
template <>
__device__ __forceinline__ void wgmma<__half>(float (&d)[kAcc], uint64_t a, uint64_t b, int acc) {
  wgmma_f16(d, a, b, acc);
}
#endif

struct alignas(1024) Smem90 {
  uint16_t q[kStages][kBM * kBK];  // 16 KB per stage, swizzled rows of 128 B
  uint16_t k[kStages][kBN * kBK];
  float acc[kBM][kBN / kMinGroupsPerBlock];  // one tile's block sums per row
  float row_max[kBM];
  float row_sum[kBM];
  uint64_t full[kStages];   // TMA path: the stage's Q and K chunks have landed
  uint64_t empty[kStages];  // TMA path: every warp's wgmma reading the stage has retired
};

// kTma: Q and K chunks arrive by TMA (5-D maps over [B, H, groups, S, D], so the strided
// antidiagonal gather is one box per operand) into stages guarded by full/empty mbarriers,
// issued by thread 0; needs q_len and k_len to be multiples of the stride (a partial last group
// must read zeros past the end, which a [groups, S] map cannot express). Otherwise all threads
// gather with cp.async behind a CTA barrier per chunk.
//
// kPair (TMA only): CTAs run in clusters of two over neighbouring row tiles of one head, and each
// loads half of every K box and multicasts it to both, so the pair pulls K from L2 once (per chunk
// 16 KB of Q + 16 KB of K per CTA instead of 16 + 32). Both walk the key tiles of the longer row
// tile (causal pairs differ by one tile at most); a CTA skips the wgmmas and epilogue of tiles past
// its own, and one without rows (the grid is padded to pairs) only takes part in the loads. A
// stage is refilled only when the consumers of both CTAs have released it (each warp arrives on
// both CTAs' empty barriers), and the CTAs leave together (cluster barrier), since the peer may
// still write into this one's shared memory.
// On the TMA path a ninth warp only produces: it issues every chunk's loads as soon as the
// consumers have released the stage, so up to kStages chunks are in flight regardless of where the
// consumers are (ncu, v6: L2 37% busy and warps stalled on their data with the producer inside
// consumer warp 0, two chunks ahead). The consumers synchronise among themselves with named
// barrier 1 (256 threads).
template <typename T, bool kTma, bool kPair>
__global__ void __launch_bounds__(kTmaThreads, 1)  // 168 registers: 9 warps allocate like 12 (__maxnreg__(224) fails to launch)
    score_kernel_sm90(const __grid_constant__ CUtensorMap tm_q, const __grid_constant__ CUtensorMap tm_k,
                      const ScoreParams p) {
#ifdef XATTN_SM90A
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  // The dynamic shared window is 1024-byte aligned in practice; align explicitly anyway.
  Smem90& sm = *reinterpret_cast<Smem90*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t(1023));
  ScoreTile tile_geo;
  const bool has_rows = score_tile_setup<kBM>(p, tile_geo);
  int own_tiles = 0, pair_tiles = 0;
  uint32_t rank = 0;
  if constexpr (kPair) {
    rank = tma::cluster_ctarank();
    ScoreTile other;
    const bool other_rows = score_tile_setup<kBM>(p, other, static_cast<int>(blockIdx.x) ^ 1);
    if (!has_rows) tile_geo = other;  // loads only: coordinates of the peer's rows, never written
    own_tiles = has_rows ? (tile_geo.j_end + kBN - 1) / kBN : 0;
    pair_tiles = max(own_tiles, other_rows ? (other.j_end + kBN - 1) / kBN : 0);
  } else {
    if (!has_rows) return;
    own_tiles = pair_tiles = (tile_geo.j_end + kBN - 1) / kBN;
  }
  const int S = tile_geo.S, nq = tile_geo.nq, i0 = tile_geo.i0, h = tile_geo.h, b = tile_geo.b, hk = tile_geo.hk;
  const int off = tile_geo.off, gpb = tile_geo.gpb, kb_count = tile_geo.kb_count, j_end = tile_geo.j_end;
  const int64_t ws_row = tile_geo.ws_row;
  float* ws = tile_geo.ws;
  const int wg = threadIdx.x / 128;
  const int warp = (threadIdx.x % 128) / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, c = lane % 4;
  const int ra = wg * 64 + warp * 16 + g, rb = ra + 8;
  const int row_a = i0 + ra, row_b = i0 + rb;

  const T* qbase = static_cast<const T*>(p.q) + b * p.q_stride_b + h * p.q_stride_h;
  const T* kbase = static_cast<const T*>(p.k) + b * p.k_stride_b + hk * p.k_stride_h;
  const int chunks_per_tile = S * p.head_dim / kBK;
  const int n_tiles = own_tiles;
  const int total = pair_tiles * chunks_per_tile;

  auto load = [&](int it, int st) {
    if (it < total) {
      const int tile = it / chunks_per_tile, chunk = it % chunks_per_tile;
      const int e = chunk * kBK;
      const int t = e / p.head_dim, d0 = e % p.head_dim;
      const int j0 = tile * kBN;
      const uint32_t qs = smem_u32(sm.q[st]), ks = smem_u32(sm.k[st]);
#pragma unroll
      for (int v = 0; v < (kBM * kBK / 8) / kThreads; ++v) {
        const int idx = threadIdx.x + v * kThreads;
        const int r = idx / 8, cc = idx % 8;
        const int i = i0 + r;
        const int tok = i * S + S - 1 - t;
        const bool ok = i < nq && tok < p.q_len;
        cp_async16(qs + r * 128 + ((cc ^ (r & 7)) << 4), qbase + (ok ? tok * p.q_stride_l + d0 + cc * 8 : 0), ok);
      }
#pragma unroll
      for (int v = 0; v < (kBN * kBK / 8) / kThreads; ++v) {
        const int idx = threadIdx.x + v * kThreads;
        const int r = idx / 8, cc = idx % 8;
        const int j = j0 + r;
        const int ktok = j * S + t;
        const bool kok = j < j_end && ktok < p.k_len;
        cp_async16(ks + r * 128 + ((cc ^ (r & 7)) << 4), kbase + (kok ? ktok * p.k_stride_l + d0 + cc * 8 : 0), kok);
      }
    }
    cp_async_commit();
  };

  const bool producer = threadIdx.x == 0;     // initialises the barriers
  const bool is_consumer = threadIdx.x < kThreads;
  auto consumer_sync = [] {
    if constexpr (kTma) asm volatile("bar.sync 1, %0;\n" ::"n"(kThreads) : "memory");
    else __syncthreads();
  };
  // TMA: chunk n of the stream into stage n % kStages once its previous use (chunk n - kStages)
  // has been released by every warp.
  auto issue = [&](int n) {
    if (n >= total) return;
    const int st = n % kStages;
    if (n >= kStages) tma::mbar_wait(smem_u32(&sm.empty[st]), ((n - kStages) / kStages) & 1);
    const int tile = n / chunks_per_tile, chunk = n % chunks_per_tile;
    const int e = chunk * kBK;
    const int t = e / p.head_dim, d0 = e % p.head_dim;
    const uint32_t full = smem_u32(&sm.full[st]);
    tma::mbar_expect_tx(full, (kBM + kBN) * kBK * sizeof(T));  // all of K arrives, half from the peer
    tma::load_5d(smem_u32(sm.q[st]), &tm_q, d0, S - 1 - t, i0, h, b, full);
    if constexpr (kPair)
      tma::load_5d_multicast(smem_u32(sm.k[st]) + rank * (kBN / 2) * 128, &tm_k, d0, t, tile * kBN + rank * (kBN / 2),
                             hk, b, full, 0x3);
    else
      tma::load_5d(smem_u32(sm.k[st]), &tm_k, d0, t, tile * kBN, hk, b, full);
  };
  if constexpr (kTma) {
    if (producer) {
      for (int st = 0; st < kStages; ++st) {
        tma::mbar_init(smem_u32(&sm.full[st]), 1);
        tma::mbar_init(smem_u32(&sm.empty[st]), (kPair ? 2 : 1) * kThreads / 32);
      }
      asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    if constexpr (kPair) tma::cluster_sync();  // the peer's barriers exist before anything targets them
    else __syncthreads();
  }
  auto release = [&](int n) {  // this warp is done with chunk n's stage (in both CTAs when paired)
    __syncwarp();
    if (lane == 0) {
      if constexpr (kPair) {
        tma::mbar_arrive_cluster(smem_u32(&sm.empty[n % kStages]), 0);
        tma::mbar_arrive_cluster(smem_u32(&sm.empty[n % kStages]), 1);
      } else {
        tma::mbar_arrive(smem_u32(&sm.empty[n % kStages]));
      }
    }
  };

  const float scale2 = p.scale / static_cast<float>(S) * kLog2e;
  float m_a = -INFINITY, m_b = -INFINITY, l_a = 0.f, l_b = 0.f;
  if (is_consumer)
    for (int x = threadIdx.x; x < kBM * (kBN / kMinGroupsPerBlock); x += kThreads) (&sm.acc[0][0])[x] = 0.f;
  __syncthreads();  // the zeroed block sums before any epilogue adds to them (the TMA path has no other barrier)
  float acc[kAcc];  // the first k16 step of each tile overwrites it (scale-d 0)
#pragma unroll
  for (int z = 0; z < kAcc; ++z) acc[z] = 0.f;

  // Loads run kPrefetch chunks ahead; one wgmma group stays in flight. The stage refilled at
  // iteration `it` was last read by wgmma(it - kPrefetch - ... ) which every warpgroup has
  // waited for before the barrier of this iteration (wait_group 1 at it - 1 retires it - 2).
  constexpr int kPrefetch = kStages - 2;
  if constexpr (!kTma) {
#pragma unroll
    for (int st = 0; st < kPrefetch; ++st) load(st, st);
  }
  if (kTma && !is_consumer) {  // the producer warp
    if (lane == 0)
      for (int n = 0; n < total; ++n) issue(n);
  } else
  for (int tile = 0; tile < pair_tiles; ++tile) {
    if (kPair && tile >= n_tiles) {  // the peer's extra tile: take part in the loads only
      for (int chunk = 0; chunk < chunks_per_tile; ++chunk) {
        const int it = tile * chunks_per_tile + chunk;
        tma::mbar_wait(smem_u32(&sm.full[it % kStages]), (it / kStages) & 1);
        release(it);
      }
      continue;
    }
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
    for (int chunk = 0; chunk < chunks_per_tile; ++chunk) {
      const int it = tile * chunks_per_tile + chunk;
      const int st = it % kStages;
      if constexpr (kTma) {
        tma::mbar_wait(smem_u32(&sm.full[st]), (it / kStages) & 1);
      } else {
        cp_async_wait<kPrefetch - 1>();  // chunk `it` has landed (for this thread)
        asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
        __syncthreads();                 // ... for every thread
        load(it + kPrefetch, (it + kPrefetch) % kStages);
      }
      const uint32_t qa = smem_u32(sm.q[st]) + wg * 64 * 128, kb_addr = smem_u32(sm.k[st]);
      // Fence the accumulators and the warpgroup before every chunk's wgmmas, not only at the tile
      // start: without it ptxas injects warpgroup.arrive in the divergent producer/release code and
      // serialises every wgmma (C7519/C7520).
#pragma unroll
      for (int z = 0; z < kAcc; ++z) asm volatile("" : "+f"(acc[z])::"memory");
      asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#pragma unroll
      for (int kk = 0; kk < kBK / 16; ++kk)
        wgmma<T>(acc, make_desc(qa + kk * 32), make_desc(kb_addr + kk * 32), (chunk == 0 && kk == 0) ? 0 : 1);
      asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
      asm volatile("wgmma.wait_group.sync.aligned 1;\n" ::: "memory");
      if constexpr (kTma) {
        if (chunk > 0) release(it - 1);  // retired by the wait above
      }
    }
    asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
    if constexpr (kTma) release((tile + 1) * chunks_per_tile - 1);

    // ---- epilogue of one 128 x 256 tile of logits ----
    const int j0 = tile * kBN;
    auto logit = [&](int row, int j, float x) -> float {
      if (j >= j_end || row >= nq) return -INFINITY;
      if (p.causal && j * S > row * S + off + S - 1) return -INFINITY;
      return x * scale2;
    };
    float tmax_a = -INFINITY, tmax_b = -INFINITY;
#pragma unroll
    for (int n = 0; n < kBN / 8; ++n) {
      const int j = j0 + n * 8 + 2 * c;
      acc[4 * n + 0] = logit(row_a, j, acc[4 * n + 0]);
      acc[4 * n + 1] = logit(row_a, j + 1, acc[4 * n + 1]);
      acc[4 * n + 2] = logit(row_b, j, acc[4 * n + 2]);
      acc[4 * n + 3] = logit(row_b, j + 1, acc[4 * n + 3]);
      tmax_a = fmaxf(tmax_a, fmaxf(acc[4 * n], acc[4 * n + 1]));
      tmax_b = fmaxf(tmax_b, fmaxf(acc[4 * n + 2], acc[4 * n + 3]));
    }
#pragma unroll
    for (int o = 1; o < 4; o <<= 1) {
      tmax_a = fmaxf(tmax_a, __shfl_xor_sync(0xffffffffu, tmax_a, o));
      tmax_b = fmaxf(tmax_b, __shfl_xor_sync(0xffffffffu, tmax_b, o));
    }
    const float nm_a = fmaxf(m_a, tmax_a), nm_b = fmaxf(m_b, tmax_b);
    l_a = (nm_a == -INFINITY) ? 0.f : l_a * exp2f(m_a - nm_a);
    l_b = (nm_b == -INFINITY) ? 0.f : l_b * exp2f(m_b - nm_b);
#pragma unroll
    for (int n = 0; n < kBN / 8; ++n) {
      float pa = (nm_a == -INFINITY) ? 0.f : exp2f(acc[4 * n] - nm_a) + exp2f(acc[4 * n + 1] - nm_a);
      float pb = (nm_b == -INFINITY) ? 0.f : exp2f(acc[4 * n + 2] - nm_b) + exp2f(acc[4 * n + 3] - nm_b);
      l_a += pa;
      l_b += pb;
      if (gpb >= 8) {
        pa += __shfl_xor_sync(0xffffffffu, pa, 1);
        pa += __shfl_xor_sync(0xffffffffu, pa, 2);
        pb += __shfl_xor_sync(0xffffffffu, pb, 1);
        pb += __shfl_xor_sync(0xffffffffu, pb, 2);
        if (c == 0) {
          sm.acc[ra][(n * 8) / gpb] += pa;
          sm.acc[rb][(n * 8) / gpb] += pb;
        }
      } else {
        if (pa != 0.f) atomicAdd(&sm.acc[ra][(n * 8 + 2 * c) / gpb], pa);
        if (pb != 0.f) atomicAdd(&sm.acc[rb][(n * 8 + 2 * c) / gpb], pb);
      }
    }
    m_a = nm_a;
    m_b = nm_b;
    consumer_sync();
    const int nkb = kBN / gpb;
    for (int x = threadIdx.x; x < kBM * nkb; x += kThreads) {
      const int r = x / nkb, kbl = x % nkb;
      const int J = j0 / gpb + kbl;
      if (i0 + r < nq && J < kb_count) ws[static_cast<int64_t>(i0 + r) * ws_row + J] = sm.acc[r][kbl];
      sm.acc[r][kbl] = 0.f;
    }
    if (c == 0) {
      // Running max after this tile, in the slot of its first 64-group sub-tile.
      if (row_a < nq) ws[static_cast<int64_t>(row_a) * ws_row + kb_count + (kBN / 64) * tile] = m_a;
      if (row_b < nq) ws[static_cast<int64_t>(row_b) * ws_row + kb_count + (kBN / 64) * tile] = m_b;
    }
    // The flushed block sums are zero again before any warp adds the next tile's: on the TMA path
    // nothing else orders them, and with few chunks per tile (S*D/64 <= 4) a fast warp can reach the
    // next epilogue while another still flushes (racecheck found it, 2026-11-27).
    consumer_sync();
  }
  cp_async_wait<0>();

#pragma unroll
  for (int o = 1; o < 4; o <<= 1) {
    l_a += __shfl_xor_sync(0xffffffffu, l_a, o);
    l_b += __shfl_xor_sync(0xffffffffu, l_b, o);
  }
  if (is_consumer && c == 0) {
    sm.row_max[ra] = m_a;
    sm.row_sum[ra] = l_a;
    sm.row_max[rb] = m_b;
    sm.row_sum[rb] = l_b;
  }
  __syncthreads();
  if (has_rows) score_finalize<kBM, kBN>(p, tile_geo, n_tiles, sm.row_max, sm.row_sum);
  if constexpr (kPair) tma::cluster_sync();  // the peer may still multicast into or arrive on this CTA
#endif
}

template <typename T, bool kTma, bool kPair>
cudaError_t launch_kernel(const CUtensorMap& mq, const CUtensorMap& mk, const ScoreParams& p, cudaStream_t stream) {
  const int nq = (p.q_len + p.stride - 1) / p.stride;
  int tiles = (nq + kBM - 1) / kBM;
  if (kPair) tiles += tiles % 2;  // whole pairs
  const dim3 grid(tiles, p.q_heads, p.batch);
  const size_t smem = sizeof(Smem90) + 1024;
  auto* kernel = score_kernel_sm90<T, kTma, kPair>;
  cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
  if (e != cudaSuccess) return e;
  if constexpr (kPair) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = dim3(kTma ? kTmaThreads : kThreads);
    cfg.dynamicSmemBytes = smem;
    cfg.stream = stream;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeClusterDimension;
    attr[0].val.clusterDim.x = 2;
    attr[0].val.clusterDim.y = 1;
    attr[0].val.clusterDim.z = 1;
    cfg.attrs = attr;
    cfg.numAttrs = 1;
    e = cudaLaunchKernelEx(&cfg, kernel, mq, mk, p);
    if (e != cudaSuccess) return e;
  } else {
    kernel<<<grid, kTma ? kTmaThreads : kThreads, smem, stream>>>(mq, mk, p);
  }
  return cudaGetLastError();
}

// Q or K viewed as [B, H, groups, S, D] (token = group * S + t); box 64 columns x 1 x rows.
bool make_group_map(CUtensorMap* map, const void* base, DType dtype, int head_dim, int len, int stride, int heads,
                    int batch, int64_t stride_l, int64_t stride_h, int64_t stride_b, uint32_t rows) {
  if (len % stride != 0) return false;
  const uint64_t dims[5] = {static_cast<uint64_t>(head_dim), static_cast<uint64_t>(stride),
                            static_cast<uint64_t>(len / stride), static_cast<uint64_t>(heads),
                            static_cast<uint64_t>(batch)};
  const int64_t strides[4] = {stride_l, stride_l * stride, stride_h, stride_b};
  const uint32_t box[5] = {static_cast<uint32_t>(kBK), 1, rows, 1, 1};
  return tma::encode_map(map, base, dtype, 5, dims, strides, box);
}

template <typename T>
cudaError_t launch_sm90(const ScoreParams& p, cudaStream_t stream) {
  CUtensorMap mq{}, mk{};
  // Paired CTAs (K multicast) only with XATTN_SCORING_PAIR=1: correct, but 1.43x slower than
  // unpaired on H100 (kernels/NOTES.md, scoring v7), kept to continue from.
  const char* env = std::getenv("XATTN_SCORING_PAIR");
  const bool pair = env && env[0] == '1';
  const bool tma = make_group_map(&mq, p.q, p.dtype, p.head_dim, p.q_len, p.stride, p.q_heads, p.batch, p.q_stride_l,
                                  p.q_stride_h, p.q_stride_b, kBM) &&
                   make_group_map(&mk, p.k, p.dtype, p.head_dim, p.k_len, p.stride, p.kv_heads, p.batch, p.k_stride_l,
                                  p.k_stride_h, p.k_stride_b, pair ? kBN / 2 : kBN);
  if (!tma) return launch_kernel<T, false, false>(mq, mk, p, stream);
  return pair ? launch_kernel<T, true, true>(mq, mk, p, stream) : launch_kernel<T, true, false>(mq, mk, p, stream);
}

}  // namespace

// Needs 4 or more groups per block (checked by the caller).
cudaError_t antidiagonal_scores_sm90(const ScoreParams& p, cudaStream_t stream) {
  if (p.block_size / p.stride < kMinGroupsPerBlock) return cudaErrorInvalidValue;
  return p.dtype == DType::kBF16 ? launch_sm90<__nv_bfloat16>(p, stream) : launch_sm90<__half>(p, stream);
}

}  // namespace xattn::kernels
