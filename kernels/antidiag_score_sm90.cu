// Antidiagonal block scores on Hopper: the same single-pass algorithm as antidiag_score.cu
// (see there), with the reshaped product on wgmma (sm_90a) instead of mma.sync.
//
// CTA = kWG consumer warpgroups x 64 query groups (BM = 64 kWG) against tiles of 256 key groups;
// reduction chunks of 64 head_dim values (128 B rows). Both operands sit in shared memory in
// the canonical 128-byte-swizzled K-major layout (16-byte chunk c of row r stored at chunk
// c ^ (r % 8); tile bases 1024-byte aligned), filled by TMA (or cp.async from the strided gather
// when TMA cannot describe it) and read by wgmma.mma_async m64n256k16 through matrix descriptors
// (SBO = 1024 B between 8-row groups; +32 B per k16 step inside the swizzle atom). cp.async writes
// are generic-proxy writes, so each thread fences the async proxy before the barrier that
// precedes wgmma. The accumulator layout per n8 chunk equals mma.sync's, so the epilogue is the
// same.
//
// Two shapes: kWG 2 (128 x 256 tiles, plus a producer warp on the TMA path: 288 threads) and
// kWG 3 (192 x 256 tiles, TMA only, 384 threads, thread 0 also issues the loads). Per 64-column
// chunk a CTA reads (BM + 256) x 128 B from L2 for 2 BM 256 64 FLOP: 87 FLOP/B at kWG 2, 110 at
// kWG 3 (-21% L2 bytes per FLOP). The v11 kernel pulled ~21 B/clk/SM from L2, about what L2
// gives, hence the wider tile. Three consumer warpgroups and a producer warp (416 threads) would
// leave 128 registers per thread (13 warps are allocated like 16, and CUDA 13 ptxas does not
// allocate above the entry count after setmaxnreg.inc), too few for a 128-float accumulator.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <type_traits>

#include "kernels/ptx.cuh"
#include "kernels/tma.cuh"
#include "kernels/wgmma_attention.cuh"
#include "kernels/score_common.cuh"
#include "kernels/select_common.cuh"
#include "kernels/xattn_kernels.h"

namespace xattn::kernels {
namespace {

#if defined(__CUDA_ARCH__) && (__CUDA_ARCH__ >= 900) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define XATTN_SM90A 1
#endif

constexpr int kBN = 256;           // key groups per tile (m64n256k16)
[[maybe_unused]] constexpr int kAcc = kBN / 2;  // accumulator floats per thread
constexpr int kBK = 64;            // 64 bf16 = 128 B = one swizzle atom row
constexpr int kStages = 4;         // with a prefetch distance of 2 (more with the producer warp)

// Threads of a kWG-warpgroup CTA: the consumers, plus a producer warp on the kWG 2 TMA path.
template <int kWG, bool kTma>
constexpr int cta_threads() {
  return 128 * kWG + (kTma && kWG == 2 ? 32 : 0);
}

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
// The left 128 columns only (m64n128k16 into the first 64 accumulators, same fragment layout).
template <typename T>
__device__ __forceinline__ void wgmma_left(float (&d)[kAcc], uint64_t a, uint64_t b, int acc) {
  float(&h)[kAcc / 2] = *reinterpret_cast<float(*)[kAcc / 2]>(&d[0]);
  if constexpr (std::is_same_v<T, __nv_bfloat16>) wgmma::ss_m64n128k16_bf16(h, a, b, acc);
  else wgmma::ss_m64n128k16_f16(h, a, b, acc);
}
#endif

// 4 stages x (24 + 32) KB + 1.6 KB at kBM 192: 226 KB, with the 1 KB alignment slack exactly the
// 227 KB a CTA may have.
template <int kBM>
struct alignas(1024) Smem90 {
  uint16_t q[kStages][kBM * kBK];  // 16 or 24 KB per stage, swizzled rows of 128 B
  uint16_t k[kStages][kBN * kBK];
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
// Two-warpgroup TMA kernel: a ninth warp only produces: it issues every chunk's loads as soon as
// the consumers have released the stage, so up to kStages chunks are in flight regardless of where
// the consumers are (ncu, v6: L2 37% busy and warps stalled on their data with the producer inside
// consumer warp 0, two chunks ahead); it leaves once its loads are issued and the consumers meet on
// barrier 1 before the finalisation. Three-warpgroup kernel: no room for that warp (see the top),
// so thread 0 issues two chunks ahead in its own loop (v14 measured it 10-13% faster than the
// two-warpgroup kernel anyway); issuing only into stages already free, without waiting, changed
// nothing. The epilogue needs no barrier: each warp writes its own rows' block sums straight to
// the workspace. (A two-CTA cluster variant with K multicast, v7, was 1.4x slower and was removed
// in session 4.)
//
// Split key ranges (sp.nsplit > 1): the CTA of row tile r and part s walks only key tiles
// [s * sp.tiles, (s + 1) * sp.tiles) of its rows and leaves its rows' final max and sum in the
// workspace for score_combine_sm90. Why: every CTA re-reads its Q rows (128 groups x S x D, 256 KB
// at S 8, D 128) once per key tile, so the 132 CTAs running at once keep 33 MB of Q alive (67 MB at
// S 16) and L2 does not hold it. ncu (H100, video-720p S 8, 1.4 GB of inputs): unsplit 45.9 GB read
// from DRAM, L2 hit rate 57%, 43.0 ms; five parts 39.0 GB, 63%, 34.6 ms. The parts of a row tile
// run in the same group of the grid (below), so they run close together and share each Q chunk.
//
// Grid order: groups of `group` row tiles, each group's CTAs part-major (x = group base +
// s * rows_in_group + r); group 1 is x = r * nsplit + s, the parts of a row tile side by side.
// The CTAs alive at once are ~132 consecutive x at different points of their key walks (each
// starts as another finishes), so every part with a running CTA keeps its whole key range live in
// L2. Group 1 kept all parts, i.e. the head's whole K (33 MB at 128K), live beside 19 Q tiles:
// ncu (H100, causal-128k S 8) read 24.8 GB from DRAM for 1.3 GB of inputs, L2 hit rate 64%, L2
// 85% busy. Group 16 keeps ~8 parts and 16 Q tiles live. Bench (H100, one call, S 8, scoring ms,
// group 1 / 16 / 16 with 4 MB parts below): causal-128k 19.28 / 17.50 / 17.04, video-720p
// 20.12 / 18.51 / 18.52, causal-32k 1.133 / 1.115 / 1.111. XATTN_SCORING_GROUP=n overrides.
struct SplitArgs {
  int nsplit = 1;     // CTAs per row tile
  int tiles = 1 << 30;  // key tiles per CTA
  int row_tiles = 0;  // row tiles in the grid
  int group = 16;     // row tiles per group of the grid order
  int mask_all = 0;   // XATTN_SCORING_MASK_ALL=1: every tile masked, at full width (A/B runs)
};

#ifdef XATTN_SM90A
// Grid index bx -> row tile and key-range part, in the grouped order above.
__device__ inline void split_locate(const SplitArgs& sp, int bx, int* row_tile, int* part) {
  const int per_group = sp.group * sp.nsplit;
  const int g0 = (bx / per_group) * sp.group;
  const int rows = min(sp.group, sp.row_tiles - g0), within = bx % per_group;
  *row_tile = g0 + within % rows;
  *part = within / rows;
}
#endif

template <typename T, bool kTma, int kWG>
__global__ void __launch_bounds__(cta_threads<kWG, kTma>(), 1)  // 168 registers (9 warps allocate like 12)
    score_kernel_sm90(const __grid_constant__ CUtensorMap tm_q, const __grid_constant__ CUtensorMap tm_k,
                      const ScoreParams p, const SplitArgs sp) {
#ifdef XATTN_SM90A
  constexpr int kBM = 64 * kWG;            // query groups per CTA
  constexpr int kThreads = 128 * kWG;      // consumer threads
  constexpr bool kProducerWarp = kTma && kWG == 2;
  constexpr bool kInlineProducer = kTma && !kProducerWarp;  // thread 0 issues the loads in its loop
  static_assert(kTma || kWG == 2, "the three-warpgroup kernel is TMA-only");
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  // The dynamic shared window is 1024-byte aligned in practice; align explicitly anyway.
  auto& sm = *reinterpret_cast<Smem90<kBM>*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t(1023));
  ScoreTile tile_geo;
  int row_tile = 0, split = 0;
  split_locate(sp, static_cast<int>(blockIdx.x), &row_tile, &split);
  if (!score_tile_setup<kBM>(p, tile_geo, row_tile, sp.row_tiles)) return;
  const int tile_begin = split * sp.tiles;
  const int row_tiles_total = (tile_geo.j_end + kBN - 1) / kBN;
  if (tile_begin >= row_tiles_total) {  // a causal row tile shorter than this split, or no keys at all
    if (sp.nsplit == 1 && threadIdx.x < 128 * kWG)  // no combine kernel follows: the row tile's scores are 0
      score_finalize<64 * kWG, kBN>(p, tile_geo, 0, nullptr, nullptr, threadIdx.x, 128 * kWG);
    return;
  }
  const int n_tiles = min(row_tiles_total - tile_begin, sp.tiles);
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
  const int total = n_tiles * chunks_per_tile;

  auto load = [&](int it, int st) {
    if (it < total) {
      const int tile = it / chunks_per_tile, chunk = it % chunks_per_tile;
      const int e = chunk * kBK;
      const int t = e / p.head_dim, d0 = e % p.head_dim;
      const int j0 = (tile_begin + tile) * kBN;
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

  const bool is_consumer = threadIdx.x < kThreads;
  auto consumers_sync = [] {  // every consumer thread (the producer warp, if any, has left)
    if constexpr (kProducerWarp) asm volatile("bar.sync 1, %0;\n" ::"n"(kThreads) : "memory");
    else __syncthreads();
  };
  // TMA: chunk n of the stream into stage n % kStages once its previous use (chunk n - kStages)
  // has been released by every consumer warp.
  auto issue = [&](int n) {
    if (n >= total) return;
    const int st = n % kStages;
    if (n >= kStages) tma::mbar_wait(smem_u32(&sm.empty[st]), ((n - kStages) / kStages) & 1);
    const int tile = n / chunks_per_tile, chunk = n % chunks_per_tile;
    const int e = chunk * kBK;
    const int t = e / p.head_dim, d0 = e % p.head_dim;
    const uint32_t full = smem_u32(&sm.full[st]);
    tma::mbar_expect_tx(full, (kBM + kBN) * kBK * sizeof(T));
    tma::load_5d(smem_u32(sm.q[st]), &tm_q, d0, S - 1 - t, i0, h, b, full);
    tma::load_5d(smem_u32(sm.k[st]), &tm_k, d0, t, (tile_begin + tile) * kBN, hk, b, full);
  };
  if constexpr (kTma) {
    if (threadIdx.x == 0) {
      for (int st = 0; st < kStages; ++st) {
        tma::mbar_init(smem_u32(&sm.full[st]), 1);
        tma::mbar_init(smem_u32(&sm.empty[st]), kThreads / 32);
      }
      asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    __syncthreads();
  }
  auto release = [&](int n) {  // this warp is done with chunk n's stage
    __syncwarp();
    if (lane == 0) tma::mbar_arrive(smem_u32(&sm.empty[n % kStages]));
  };

  const float scale2 = p.scale / static_cast<float>(S) * kLog2e;  // > 0 (antidiagonal_scores_sm90)
  float m_a = -INFINITY, m_b = -INFINITY, l_a = 0.f, l_b = 0.f;
  float acc[kAcc];  // the first k16 step of each tile overwrites it (scale-d 0)
#pragma unroll
  for (int z = 0; z < kAcc; ++z) acc[z] = 0.f;

  // Loads run kPrefetch chunks ahead; one wgmma group stays in flight. The stage refilled at
  // iteration `it` was last read by wgmma(it - 2), which every warp released (or, on the cp.async
  // path, waited for before this iteration's barrier: wait_group 1 at it - 1 retires it - 2).
  constexpr int kPrefetch = kStages - 2;
  if constexpr (!kTma) {
#pragma unroll
    for (int st = 0; st < kPrefetch; ++st) load(st, st);
  }
  // The producer warp issues every load, then leaves; the consumers meet on barrier 1 at the end.
  // (When it stayed for a CTA-wide __syncthreads instead — lanes 1-31 parked at a __syncwarp or the
  // whole warp waiting on each stage — racecheck reported the row max/sum writes racing the
  // finalisation in 2-4 hazards per run; with it gone, 4 of 4 runs were clean.)
  if constexpr (kProducerWarp) {
    if (!is_consumer) {
      if (lane == 0)
        for (int n = 0; n < total; ++n) issue(n);
      return;
    }
  }
  int next = 0;  // kInlineProducer: the next chunk thread 0 issues
  // Interior tiles (inside the key length, the last row and the causal diagonal) need no mask;
  // key tiles ascend, so they are a prefix of this CTA's range and the masked ones (at most the
  // diagonal and the tail) follow. Two copies of the tile loop keep the mask out of the common one
  // (the same split took the attention kernel from 554 to 669 TF/s).
  auto interior = [&](int tile) {
    const int j0 = (tile_begin + tile) * kBN;
    return j0 + kBN <= j_end && i0 + kBM <= nq && (!p.causal || (j0 + kBN - 1) * S <= i0 * S + off + S - 1);
  };
  int n_interior = sp.mask_all ? 0 : n_tiles;
  while (n_interior > 0 && !interior(n_interior - 1)) --n_interior;
  // In a masked tile a warpgroup multiplies only the columns some of its rows can see: all 256
  // (width 2), the left 128 (1) or none (0); the epilogue masks the rest to -inf whatever the
  // accumulators hold. Causal diagonal tiles are half empty; this skips 3% (128K, S 8) to 11% (32K)
  // of the tile work.
  auto tile_width = [&](int tile) {
    const int j0 = (tile_begin + tile) * kBN;
    if (sp.mask_all) return 2;         // A/B runs: the kernel before the split
    if (i0 + wg * 64 >= nq) return 0;  // past the last row
    const int r_hi = min(i0 + wg * 64 + 63, nq - 1);
    int last = j_end - 1;  // last column any row of this warpgroup keeps
    if (p.causal) last = min(last, (r_hi * S + off + S - 1) / S);
    const int need = last - j0 + 1;
    return need <= 0 ? 0 : need <= kBN / 2 ? 1 : 2;
  };
  auto do_tile = [&](int tile, auto masked) {  // local index; key tile tile_begin + tile
    // The chunk loop for one width (a compile-time constant, so the wgmmas stay straight-line code:
    // a runtime width test between fence and commit makes ptxas inject warpgroup.arrive and spill).
    auto gemm = [&](auto w) {
      constexpr int kWidth = decltype(w)::value;
      asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
      for (int chunk = 0; chunk < chunks_per_tile; ++chunk) {
        const int it = tile * chunks_per_tile + chunk;
        const int st = it % kStages;
        if constexpr (kInlineProducer) {
          // Chunks up to it + 2: their stages were last read by chunk it - 2, which this warp released
          // in the previous iteration; the wait is for the slowest other warp.
          if (threadIdx.x == 0)
            for (; next <= it + kPrefetch && next < total; ++next) issue(next);
          __syncwarp();
        }
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
        if constexpr (kWidth == 2) {
#pragma unroll
          for (int kk = 0; kk < kBK / 16; ++kk)
            wgmma<T>(acc, make_desc(qa + kk * 32), make_desc(kb_addr + kk * 32), (chunk == 0 && kk == 0) ? 0 : 1);
        } else if constexpr (kWidth == 1) {
#pragma unroll
          for (int kk = 0; kk < kBK / 16; ++kk)
            wgmma_left<T>(acc, make_desc(qa + kk * 32), make_desc(kb_addr + kk * 32), (chunk == 0 && kk == 0) ? 0 : 1);
        }
        asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
        asm volatile("wgmma.wait_group.sync.aligned 1;\n" ::: "memory");
        if constexpr (kTma) {
          if (chunk > 0) release(it - 1);  // retired by the wait above
        }
      }
    };
    if constexpr (decltype(masked)::value) {
      const int width = __shfl_sync(0xffffffffu, tile_width(tile), 0);  // warp-uniform for ptxas
      if (width == 2) gemm(std::integral_constant<int, 2>{});
      else if (width == 1) gemm(std::integral_constant<int, 1>{});
      else gemm(std::integral_constant<int, 0>{});
    } else {
      gemm(std::integral_constant<int, 2>{});
    }
    asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
    if constexpr (kTma) release((tile + 1) * chunks_per_tile - 1);

    // ---- epilogue of one kBM x 256 tile of logits ----
    // Only the masked copy of the loop masks elements; the scale is folded into the exponent (max
    // commutes with a positive scale) and 2^x is one MUFU.EX2 (ex2.approx.ftz: ~2 ulp, far below
    // what selection can see). The block sums go straight to the workspace (no shared-memory
    // buffer and no barrier): lane c of a quad ends with every fourth block, so one store writes
    // 16 contiguous bytes per row. The epilogue leaves the tensor cores idle (all warpgroups reach
    // it together): skipping it made the kernel 20-24% faster (experiment, H100, 2026-11-27).
    const int j0 = (tile_begin + tile) * kBN;
    if constexpr (decltype(masked)::value) {
#pragma unroll
      for (int n = 0; n < kBN / 8; ++n) {
#pragma unroll
        for (int z = 0; z < 4; ++z) {
          const int j = j0 + n * 8 + 2 * c + (z & 1);
          const int row = z < 2 ? row_a : row_b;
          if (j >= j_end || row >= nq || (p.causal && j * S > row * S + off + S - 1)) acc[4 * n + z] = -INFINITY;
        }
      }
    }
    // Four independent partial maxima per row (one chain of 64 dependent FMNMX was the longest
    // path of the epilogue).
    float pm_a[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY}, pm_b[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
#pragma unroll
    for (int n = 0; n < kBN / 8; ++n) {
      pm_a[n % 4] = fmaxf(pm_a[n % 4], fmaxf(acc[4 * n], acc[4 * n + 1]));
      pm_b[n % 4] = fmaxf(pm_b[n % 4], fmaxf(acc[4 * n + 2], acc[4 * n + 3]));
    }
    float tmax_a = fmaxf(fmaxf(pm_a[0], pm_a[1]), fmaxf(pm_a[2], pm_a[3]));
    float tmax_b = fmaxf(fmaxf(pm_b[0], pm_b[1]), fmaxf(pm_b[2], pm_b[3]));
#pragma unroll
    for (int o = 1; o < 4; o <<= 1) {
      tmax_a = fmaxf(tmax_a, __shfl_xor_sync(0xffffffffu, tmax_a, o));
      tmax_b = fmaxf(tmax_b, __shfl_xor_sync(0xffffffffu, tmax_b, o));
    }
    const float nm_a = fmaxf(m_a, tmax_a * scale2), nm_b = fmaxf(m_b, tmax_b * scale2);
    float sub_a = nm_a, sub_b = nm_b;
    if constexpr (decltype(masked)::value) {  // a row may still be all -inf
      l_a = (nm_a == -INFINITY) ? 0.f : l_a * fast_exp2(m_a - nm_a);
      l_b = (nm_b == -INFINITY) ? 0.f : l_b * fast_exp2(m_b - nm_b);
      sub_a = (nm_a == -INFINITY) ? 0.f : nm_a;
      sub_b = (nm_b == -INFINITY) ? 0.f : nm_b;
    } else {  // every logit finite, so nm is; m = -inf (first tile) gives exp2(-inf) = 0
      l_a *= fast_exp2(m_a - nm_a);
      l_b *= fast_exp2(m_b - nm_b);
    }
    float* wa = ws + static_cast<int64_t>(row_a) * ws_row + j0 / gpb;  // this tile's first block
    float* wb = ws + static_cast<int64_t>(row_b) * ws_row + j0 / gpb;
    const int nkb = min(kBN / gpb, kb_count - j0 / gpb);  // blocks of this tile inside the row
    const bool ok_a = row_a < nq, ok_b = row_b < nq;
    // gpb >= 8, with the block width a compile-time constant (kPer n8 chunks per block, no
    // run-time block arithmetic in the unrolled steps): each thread sums its columns of a block,
    // the quad sums them with two shuffles, and lane c keeps blocks c, c + 4, ... for the store.
    auto block_sums = [&](auto per_c) {
      constexpr int kPer = decltype(per_c)::value;  // n8 chunks per block: 1, 2, 4 or 8 (gpb 8 ... 64)
      float keep_a = 0.f, keep_b = 0.f;
#pragma unroll
      for (int k = 0; k < kBN / 8 / kPer; ++k) {
        float a0 = 0.f, a1 = 0.f, b0 = 0.f, b1 = 0.f;
#pragma unroll
        for (int q = 0; q < kPer; ++q) {
          const int n = k * kPer + q;
          a0 += fast_exp2(fmaf(acc[4 * n], scale2, -sub_a));
          a1 += fast_exp2(fmaf(acc[4 * n + 1], scale2, -sub_a));
          b0 += fast_exp2(fmaf(acc[4 * n + 2], scale2, -sub_b));
          b1 += fast_exp2(fmaf(acc[4 * n + 3], scale2, -sub_b));
        }
        float pa = a0 + a1, pb = b0 + b1;
        l_a += pa;
        l_b += pb;
        pa += __shfl_xor_sync(0xffffffffu, pa, 1);
        pa += __shfl_xor_sync(0xffffffffu, pa, 2);
        pb += __shfl_xor_sync(0xffffffffu, pb, 1);
        pb += __shfl_xor_sync(0xffffffffu, pb, 2);
        if ((k & 3) == c) keep_a = pa, keep_b = pb;
        if ((k & 3) == 3) {  // lanes 0-3 store blocks k - 3 ... k: 16 contiguous bytes per row
          const int x = k - 3 + c;
          if (x < nkb) {
            if (ok_a) wa[x] = keep_a;
            if (ok_b) wb[x] = keep_b;
          }
        }
      }
    };
    if (gpb == 16) {
      block_sums(std::integral_constant<int, 2>{});
    } else if (gpb == 8) {
      block_sums(std::integral_constant<int, 1>{});
    } else if (gpb == 32) {
      block_sums(std::integral_constant<int, 4>{});
    } else if (gpb == 64) {
      block_sums(std::integral_constant<int, 8>{});
    } else {  // gpb 4: lanes c 0-1 and 2-3 of a quad share a block
#pragma unroll
      for (int n = 0; n < kBN / 8; ++n) {
        float pa = fast_exp2(fmaf(acc[4 * n], scale2, -sub_a)) + fast_exp2(fmaf(acc[4 * n + 1], scale2, -sub_a));
        float pb = fast_exp2(fmaf(acc[4 * n + 2], scale2, -sub_b)) + fast_exp2(fmaf(acc[4 * n + 3], scale2, -sub_b));
        l_a += pa;
        l_b += pb;
        pa += __shfl_xor_sync(0xffffffffu, pa, 1);
        pb += __shfl_xor_sync(0xffffffffu, pb, 1);
        const int x = 2 * n + c / 2;
        if ((c & 1) == 0 && x < nkb) {
          if (ok_a) wa[x] = pa;
          if (ok_b) wb[x] = pb;
        }
      }
    }
    m_a = nm_a;
    m_b = nm_b;
    if (c == 0) {
      // Running max after this tile, in the slot of its first 64-group sub-tile.
      const int slot = kb_count + (kBN / 64) * (tile_begin + tile);
      if (ok_a) ws[static_cast<int64_t>(row_a) * ws_row + slot] = m_a;
      if (ok_b) ws[static_cast<int64_t>(row_b) * ws_row + slot] = m_b;
    }
    };
  int tile = 0;
  for (; tile < n_interior; ++tile) do_tile(tile, std::false_type{});
  for (; tile < n_tiles; ++tile) do_tile(tile, std::true_type{});
  cp_async_wait<0>();

#pragma unroll
  for (int o = 1; o < 4; o <<= 1) {
    l_a += __shfl_xor_sync(0xffffffffu, l_a, o);
    l_b += __shfl_xor_sync(0xffffffffu, l_b, o);
  }
  if (sp.nsplit > 1) {  // this part's max and sum beside its first tile's slot; score_combine_sm90 finishes
    if (c == 0) {
      const int slot = kb_count + (kBN / 64) * tile_begin;
      if (row_a < nq) ws[static_cast<int64_t>(row_a) * ws_row + slot + 1] = m_a;
      if (row_a < nq) ws[static_cast<int64_t>(row_a) * ws_row + slot + 2] = l_a;
      if (row_b < nq) ws[static_cast<int64_t>(row_b) * ws_row + slot + 1] = m_b;
      if (row_b < nq) ws[static_cast<int64_t>(row_b) * ws_row + slot + 2] = l_b;
    }
    return;
  }
  if (c == 0) {
    sm.row_max[ra] = m_a;
    sm.row_sum[ra] = l_a;
    sm.row_max[rb] = m_b;
    sm.row_sum[rb] = l_b;
  }
  consumers_sync();  // also orders this CTA's workspace stores before the finalisation reads them
  score_finalize<kBM, kBN>(p, tile_geo, n_tiles, sm.row_max, sm.row_sum, threadIdx.x, kThreads);
#endif
}

// After a split launch: each row's max and sum from its parts, then the block scores as in the
// unsplit kernel's own finish. kCombineParts CTAs per row tile, each writing every
// kCombineParts-th stretch of its outputs: with one CTA per row tile, the longest causal row tiles
// walked their outputs in a dozen dependent rounds of workspace loads, and the kernel took 90 us
// of the 1.22 ms causal 32K S 8 estimate (ncu, H100, 2026-11-27).
constexpr int kCombineParts = 4;
template <int kBM>
__global__ void __launch_bounds__(256) score_combine_sm90(const ScoreParams p, const SplitArgs sp) {
  __shared__ float row_max[kBM], row_sum[kBM];
  ScoreTile t;
  const int part = static_cast<int>(blockIdx.x) % kCombineParts;
  if (!score_tile_setup<kBM>(p, t, static_cast<int>(blockIdx.x) / kCombineParts, sp.row_tiles)) return;
  const int n_tiles = (t.j_end + kBN - 1) / kBN;
  const int parts = (n_tiles + sp.tiles - 1) / sp.tiles;
  for (int r = threadIdx.x; r < kBM; r += blockDim.x) {
    float m = -INFINITY, l = 0.f;
    if (t.i0 + r < t.nq) {
      const float* w = t.ws + static_cast<int64_t>(t.i0 + r) * t.ws_row + t.kb_count;
      for (int s = 0; s < parts; ++s) m = fmaxf(m, w[(kBN / 64) * s * sp.tiles + 1]);
      if (m != -INFINITY)
        for (int s = 0; s < parts; ++s) {
          const float ls = w[(kBN / 64) * s * sp.tiles + 2];
          if (ls > 0.f) l += ls * exp2f(w[(kBN / 64) * s * sp.tiles + 1] - m);
        }
    }
    row_max[r] = m;
    row_sum[r] = l;
  }
  __syncthreads();
  score_finalize<kBM, kBN>(p, t, n_tiles, row_max, row_sum, threadIdx.x, blockDim.x, part, kCombineParts);
}

// The combine and the selection in one kernel (estimate_blocks): warp w of CTA x finishes query
// block I = x * 4 + w (causal: the longest rows first) and selects it at once. Why: at causal 32K
// S 8 the combine (memory-bound: it reads the per-group block sums, 16 floats per score) took
// 86 us and the warp-per-row selection (latency-bound sorts: DRAM 2% busy) 59 us, one after the
// other (ncu, H100, 2026-11-27); here one warp's loads overlap other warps' sorts, the scores are
// read back from L1/L2 right after they are written, and one launch goes. Per warp: its gpb
// rows' maxima and sums from the parts (lane r, all parts' loads in one round per 8), the factor
// exp2(tile max - row max) / row sum per (row, key tile) in shared memory, then each lane sums
// its E outputs (blocks lane + 32 i) over the rows, loading two rows' values per round; the row
// is then sorted and selected by select_row_warp exactly as select_warp_kernel does. Rows of up
// to 32 * EMax blocks and gpb <= 16 (strides >= 8 at block 128, >= 4 at block 64).
constexpr int kFusedMaxGpb = 16;
template <int kBM, int EMax>
__global__ void __launch_bounds__(32 * select_detail::kWarpRows, EMax <= 8 ? 5 : 3)
    score_select_sm90(const ScoreParams p, const SplitArgs sp, const SelectParams sel) {
  using namespace select_detail;
  constexpr int kMaxTiles = 32 * EMax * kFusedMaxGpb / kBN;  // key tiles a row of 32 EMax blocks spans
  __shared__ float factor[kWarpRows][kFusedMaxGpb][kMaxTiles];
  __shared__ float row_max[kWarpRows][kFusedMaxGpb], row_sum[kWarpRows][kFusedMaxGpb];
  __shared__ uint8_t flag[kWarpRows][32 * EMax];
  const int w = static_cast<int>(threadIdx.x) >> 5, lane = static_cast<int>(threadIdx.x) & 31;
  const int qb = (p.q_len + p.block_size - 1) / p.block_size;
  const int x = static_cast<int>(blockIdx.x) * kWarpRows + w;
  if (x >= qb) return;
  const int I = p.causal ? qb - 1 - x : x;
  const int gpb = p.block_size / p.stride;
  const int row0 = I * gpb;  // first query group of the block (every block starts inside a row tile)
  ScoreTile t;
  {
    const int rt = row0 / kBM;
    score_tile_setup<kBM>(p, t, p.causal ? sp.row_tiles - 1 - rt : rt, sp.row_tiles);
  }
  const int n_tiles = (t.j_end + kBN - 1) / kBN;
  const int parts = (n_tiles + sp.tiles - 1) / sp.tiles;
  const int kb_done = min(t.kb_count, n_tiles * (kBN / gpb));
  const int rows = min(gpb, t.nq - row0);  // the block's query groups inside the input

  // Each row's max and sum over the parts (as score_combine_sm90, but every part's pair loaded
  // in one round of eight).
  if (lane < rows) {
    const float* wr = t.ws + static_cast<int64_t>(row0 + lane) * t.ws_row + t.kb_count;
    float m = -INFINITY, l = 0.f;
    for (int s0 = 0; s0 < parts; s0 += 8) {
      float ms[8], ls[8];
#pragma unroll
      for (int u = 0; u < 8; ++u) {
        const bool ok = s0 + u < parts;
        ms[u] = ok ? wr[(kBN / 64) * (s0 + u) * sp.tiles + 1] : -INFINITY;
        ls[u] = ok ? wr[(kBN / 64) * (s0 + u) * sp.tiles + 2] : 0.f;
      }
      float mb = m;
#pragma unroll
      for (int u = 0; u < 8; ++u) mb = fmaxf(mb, ms[u]);
      if (mb != -INFINITY) {
        l = m == -INFINITY ? 0.f : l * exp2f(m - mb);
#pragma unroll
        for (int u = 0; u < 8; ++u)
          if (ls[u] > 0.f) l += ls[u] * exp2f(ms[u] - mb);
        m = mb;
      }
    }
    row_max[w][lane] = m;
    row_sum[w][lane] = l;
  }
  __syncwarp();
  for (int e = lane; e < rows * n_tiles; e += 32) {
    const int r = e / n_tiles, tile = e % n_tiles;
    const float l = row_sum[w][r];
    const float mt = t.ws[static_cast<int64_t>(row0 + r) * t.ws_row + t.kb_count + (kBN / 64) * tile];
    factor[w][r][tile] = l > 0.f ? __fdividef(ptx::fast_exp2(mt - row_max[w][r]), l) : 0.f;
  }
  __syncwarp();

  // The row's scores: lane's blocks J = lane + 32 i, summed over the rows, two rows per round.
  float a[EMax];
#pragma unroll
  for (int i = 0; i < EMax; ++i) a[i] = 0.f;
  const float* w0 = t.ws + static_cast<int64_t>(row0) * t.ws_row;
  for (int r = 0; r < rows; r += 2) {
    const bool two = r + 1 < rows;
    float v0[EMax], v1[EMax];
#pragma unroll
    for (int i = 0; i < EMax; ++i) {
      const int J = lane + 32 * i;
      v0[i] = J < kb_done ? w0[static_cast<int64_t>(r) * t.ws_row + J] : 0.f;
      v1[i] = J < kb_done && two ? w0[static_cast<int64_t>(r + 1) * t.ws_row + J] : 0.f;
    }
#pragma unroll
    for (int i = 0; i < EMax; ++i) {
      const int tile = min((lane + 32 * i) * gpb / kBN, kMaxTiles - 1);
      a[i] += v0[i] * factor[w][r][tile];
      if (two) a[i] += v1[i] * factor[w][r + 1][tile];
    }
  }
  float* out = p.scores + ((static_cast<int64_t>(t.b) * p.q_heads + t.h) * t.qb_count + I) * t.kb_count;
#pragma unroll
  for (int i = 0; i < EMax; ++i) {
    const int J = lane + 32 * i;
    if (J < t.kb_count) out[J] = J < kb_done ? a[i] : 0.f;
  }
  __syncwarp();  // the row's scores, written by every lane, are read by select_row_warp
  select_row<EMax>(sel, t.b, t.h, I, flag[w]);
}

// How many CTAs share a row tile: ceil(SMs x Q-tile bytes / 4 MB), at most one per key tile. The
// rule dates from the side-by-side order, where it kept one wave's distinct Q tiles within 8 MB of
// L2; in the grouped order the group fixes the Q tiles alive and the rule only sets the parts'
// length, which sets the K range alive per part (see SplitArgs). 8 MB gave 7 parts of 10 key
// tiles at causal-128k S 8 (17.50 ms with group 16); 4 MB gives 13 parts of 5 (17.04 ms; at
// causal-32k 8 parts of 2, video-720p 12 of 5). XATTN_SCORING_SPLIT=n overrides (1 = no split).
SplitArgs choose_split(const ScoreParams& p, int row_tiles, int bm) {
  SplitArgs sp;
  sp.row_tiles = row_tiles;
  const int nk = (p.k_len + p.stride - 1) / p.stride;
  const int max_tiles = (nk + kBN - 1) / kBN;
  int want = 1;
  if (const char* env = std::getenv("XATTN_SCORING_SPLIT"); env && *env) {
    want = std::atoi(env);
  } else {
    int dev = 0, sms = 132;
    if (cudaGetDevice(&dev) == cudaSuccess) cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
    const double q_tile_bytes = static_cast<double>(bm) * p.stride * p.head_dim * 2;
    want = static_cast<int>(std::ceil(sms * q_tile_bytes / (4.0 * 1024 * 1024)));
  }
  want = std::max(1, std::min(want, max_tiles));
  if (const char* env = std::getenv("XATTN_SCORING_MASK_ALL"); env && std::atoi(env) != 0) sp.mask_all = 1;
  if (const char* env = std::getenv("XATTN_SCORING_GROUP"); env && *env) sp.group = std::max(1, std::atoi(env));
  sp.group = std::min(sp.group, row_tiles);
  if (want == 1) return sp;
  sp.tiles = (max_tiles + want - 1) / want;
  sp.nsplit = (max_tiles + sp.tiles - 1) / sp.tiles;
  return sp;
}

// Whether score_select_sm90 can finish this split launch and select (the caller asked for a
// selection, its rows fit a warp sort of <= 512 blocks, gpb <= 16, XATTN_SCORING_FUSED not 0).
bool fused_select_ok(const ScoreParams& p, const SelectParams* sel) {
  if (!sel || !select_detail::select_params_ok(*sel) || sel->scores != p.scores) return false;
  if (sel->batch != p.batch || sel->heads != p.q_heads || sel->q_len != p.q_len || sel->k_len != p.k_len ||
      sel->block_size != p.block_size || sel->causal != p.causal || sel->key_lengths != p.key_lengths)
    return false;
  if (p.block_size / p.stride > kFusedMaxGpb) return false;
  if ((p.k_len + p.block_size - 1) / p.block_size > select_detail::kWarpMaxBlocks) return false;
  const char* env = std::getenv("XATTN_SCORING_FUSED");
  return !(env && *env && std::atoi(env) == 0);
}

// The score kernel, then the combine (split launches) or, when `sel` allows, the combine and
// the selection in one kernel plus the per-head statistics (*selected = true).
template <typename T, bool kTma, int kWG>
cudaError_t launch_kernel(const CUtensorMap& mq, const CUtensorMap& mk, const ScoreParams& p, const SelectParams* sel,
                          bool* selected, cudaStream_t stream) {
  constexpr int kBM = 64 * kWG;
  const int nq = (p.q_len + p.stride - 1) / p.stride;
  const int tiles = (nq + kBM - 1) / kBM;
  const SplitArgs sp = choose_split(p, tiles, kBM);
  const dim3 grid(tiles * sp.nsplit, p.q_heads, p.batch);
  const size_t smem = sizeof(Smem90<kBM>) + 1024;
  auto* kernel = score_kernel_sm90<T, kTma, kWG>;
  cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
  if (e != cudaSuccess) return e;
  kernel<<<grid, cta_threads<kWG, kTma>(), smem, stream>>>(mq, mk, p, sp);
  if (sp.nsplit > 1) {
    if ((e = cudaGetLastError()) != cudaSuccess) return e;
    if (fused_select_ok(p, sel)) {
      const int qb = (p.q_len + p.block_size - 1) / p.block_size, kb = (p.k_len + p.block_size - 1) / p.block_size;
      const dim3 rows_grid((qb + select_detail::kWarpRows - 1) / select_detail::kWarpRows, p.q_heads, p.batch);
      if (kb <= select_detail::kWarpMaxBlocks / 2)
        score_select_sm90<kBM, 8><<<rows_grid, 32 * select_detail::kWarpRows, 0, stream>>>(p, sp, *sel);
      else
        score_select_sm90<kBM, 16><<<rows_grid, 32 * select_detail::kWarpRows, 0, stream>>>(p, sp, *sel);
      if ((e = cudaGetLastError()) != cudaSuccess) return e;
      *selected = true;
      return select_detail::launch_head_stats(*sel, stream);
    }
    score_combine_sm90<kBM><<<dim3(tiles * kCombineParts, p.q_heads, p.batch), 256, 0, stream>>>(p, sp);
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

// TMA-describable inputs take the three-warpgroup kernel (XATTN_SCORING_WARPGROUPS=2 forces the
// two-warpgroup one, for comparison); the rest gather with cp.async in the two-warpgroup kernel.
template <typename T>
cudaError_t launch_sm90(const ScoreParams& p, const SelectParams* sel, bool* selected, cudaStream_t stream) {
  const char* env = std::getenv("XATTN_SCORING_WARPGROUPS");
  const int wgs = env && std::atoi(env) == 2 ? 2 : 3;
  CUtensorMap mq{}, mk{};
  const bool tma = make_group_map(&mq, p.q, p.dtype, p.head_dim, p.q_len, p.stride, p.q_heads, p.batch, p.q_stride_l,
                                  p.q_stride_h, p.q_stride_b, 64 * wgs) &&
                   make_group_map(&mk, p.k, p.dtype, p.head_dim, p.k_len, p.stride, p.kv_heads, p.batch, p.k_stride_l,
                                  p.k_stride_h, p.k_stride_b, kBN);
  if (!tma) return launch_kernel<T, false, 2>(mq, mk, p, sel, selected, stream);
  return wgs == 3 ? launch_kernel<T, true, 3>(mq, mk, p, sel, selected, stream)
                  : launch_kernel<T, true, 2>(mq, mk, p, sel, selected, stream);
}

}  // namespace

// Needs 4, 8, 16, 32 or 64 groups per block (the epilogue has code for each) and a positive scale
// (it takes each row's maximum before scaling); the caller sends other calls to the mma.sync kernel.
// With `sel` (its scores = p.scores), the selection may run inside the launch: *selected says
// whether it did (else the caller runs select_blocks).
cudaError_t antidiagonal_scores_sm90(const ScoreParams& p, const SelectParams* sel, bool* selected,
                                     cudaStream_t stream) {
  bool dummy = false;
  if (!selected) selected = &dummy;
  *selected = false;
  if (!antidiagonal_sm90_groups_ok(p.block_size, p.stride) || !(p.scale > 0.f)) return cudaErrorInvalidValue;
  return p.dtype == DType::kBF16 ? launch_sm90<__nv_bfloat16>(p, sel, selected, stream)
                                 : launch_sm90<__half>(p, sel, selected, stream);
}

}  // namespace xattn::kernels
