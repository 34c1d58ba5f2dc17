// Block-sparse flash attention, forward, Hopper (sm_90a). History and measurements: NOTES.md.
//
// CTA = one 128-row query block of one (batch, head) = 2 warpgroups x 64 rows, walking the row's
// kept key blocks (compact index list, ascending) one whole 128-key block per step:
//   S = Q K^T    wgmma m64n128k16 with K from shared memory (K-major, 128B swizzle) and Q as
//                register A fragments (read once with ldmatrix), or Q from shared memory too on
//                the cp.async path,
//   mask + online softmax in registers (log2 domain, ex2.approx); the per-element mask runs only
//                on the list's suffix of blocks that reach past the key length or the diagonal
//                (a second copy of the loop), which took the dense kernel from 554 to 669 TF/s,
//   O += P V     wgmma m64n{D}k16 with P as the register A operand (the S accumulator layout is
//                the A-fragment layout, so P is only converted and packed) and V from shared
//                memory N-contiguous ("MN-major", imm-trans-b = 1: LBO = distance between the
//                64-column halves, SBO = 1024 B between 8-key groups).
// Tiles sit in shared memory as 128-byte rows (64 elements) in 64-column halves, 16-byte chunk c
// of row r at chunk c ^ (r % 8): the canonical 128B-swizzle layout wgmma reads and TMA writes.
// K/V go through 3 stages:
//   TMA path (default): a third, producer warpgroup (setmaxnreg.dec 24; the consumers take 240)
//     issues cp.async.bulk.tensor loads up to 3 blocks ahead; per-stage full mbarriers
//     (transaction counts) and empty mbarriers (one arrive per consumer warp) replace CTA barriers.
//     XATTN_ATTENTION_KERNEL=wgmma_inline keeps the previous generation, where consumer thread 0
//     issued them two blocks ahead inside its own loop (and stalled its warpgroup whenever the
//     other one still read the stage): 10% slower (NOTES.md, v6).
//   cp.async path (layouts TMA cannot describe): all threads copy, fence the async proxy and meet
//     at one CTA barrier per step.
// Per warpgroup, FA3's order in the source: S(t+1) and PV(t) are issued back to back, the softmax
// of block t+1 is meant to run on the CUDA cores while PV(t) is on the tensor cores, and P is packed
// after PV(t) retires (writing the A registers of an in-flight wgmma makes ptxas serialise
// everything, C7514). CUDA 13.0's ptxas, however, moves the wait for PV(t) above the softmax's
// exponentials (SASS of the unmasked loop: DEPBAR 0x1, the row-max reduction, DEPBAR 0x0, then the
// MUFUs; in the masked loop the two waits are back to back), so only the max overlaps PV(t); the
// two warpgroups overlap each other instead (NOTES.md, attention v6 and session 6).
// Short rows (at most 128 key blocks): the producer-warpgroup kernel runs persistent, one CTA per
// SM walking many rows; the producer also loads each row's Q and hands over its metadata, and the
// consumers score a row's first block during the previous row's last PV (see the row loop).
// A row's last block, where a consumer warpgroup's rows see at most its keys 0..63 (warpgroup 0 on
// an aligned causal diagonal; key tails), costs that warpgroup half a softmax and 4 of 8 PV
// k-slices (kFlagHalfLast); S stays one m64n128 GEMM (see issue_pv and NOTES.md, session 13).
// A row's O leaves through the Q buffer (free once the next row's Q is in registers, or, at a
// CTA's last row, once the storer has emptied it) and a TMA store issued by a second producer
// warp, instead of each consumer thread's 4-byte stores, which held the tensor cores ~2.8 us per
// row (causal 8K, 25%: 455.6 -> 527.9 TF/s with the stores skipped); XATTN_ATTENTION_O_STAGE=0
// keeps those stores (and rows without kept blocks use them for their zeros).
// Rows with no kept key output zeros and LSE -inf, like the sm_80 kernel (sparse_attention.cu).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <type_traits>

#include "kernels/ptx.cuh"
#include "kernels/tma.cuh"
#include "kernels/wgmma_attention.cuh"
#include "kernels/xattn_kernels.h"

namespace xattn::kernels {
namespace {

#if defined(__CUDA_ARCH__) && (__CUDA_ARCH__ >= 900) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define XATTN_ATTN_SM90A 1
#endif

constexpr int kRows = 128;     // query rows per CTA = block size
[[maybe_unused]] constexpr int kKeys = 128;  // keys per step = one key block
constexpr int kThreads = 256;  // 2 consumer warpgroups

// Load paths and who issues the TMA loads:
//   kCpAsync: all 256 threads copy K/V with cp.async behind a CTA barrier per step (v3);
//   kTmaInline: TMA, issued by consumer thread 0 two blocks ahead inside its own loop (v4-v5);
//   kTmaProducer: TMA, issued by a third warpgroup that only produces (v6, FA3's layout): 384
//     threads, the producer gives registers away (setmaxnreg.dec 24) and the consumers take them
//     (setmaxnreg.inc 240), so the consumers never wait on a stage another warpgroup still reads.
enum class Load { kCpAsync, kTmaInline, kTmaProducer };
template <Load kLoad>
constexpr int cta_threads() {
  return kLoad == Load::kTmaProducer ? kThreads + 128 : kThreads;
}
constexpr int kHalfBytes = kRows * 128;  // one 64-column half of a 128-row tile: 16 KB

constexpr int kStages = 3;
constexpr int kFlagPingPong = 1;  // kernel flags (see launch_kernel)
constexpr int kFlagMaskAll = 2;
constexpr int kFlagOStage = 4;  // producer kernel: O leaves through shared memory and a TMA store
constexpr int kFlagLazyRescale = 8;  // softmax: the reference maximum lags the exact one by up to 8 (log2)
constexpr int kFlagHalfLast = 16;    // producer kernel: a row's last block at half width where a warpgroup sees <= 64 keys

// Event trace, in diagnosis builds only (scripts/attn_trace.cu compiles this file with
// XATTN_ATTN_TRACE; XATTN_ATTN_TRACE_STEPS adds events inside the steps, which slow them): every
// warp of a CTA records (clock, event | argument << 8) at the XATTN_TRACE points, all 32 lanes
// storing the same record (no branch: ptxas serialises wgmma around divergent code), into
// g_attn_trace[(CTA * kTraceWarps + warp) * kTraceCap + i], CTA = blockIdx.x: one region per CTA
// of the persistent producer kernel's 1-D grid (the harness launches only that one). Event
// numbers name the call sites (scripts/attn_trace.cu has their names).
struct TraceRec {
  uint32_t t;       // %clock (differences wrap correctly)
  uint32_t ev_arg;  // event | argument << 8
};
[[maybe_unused]] constexpr int kTraceWarps = 12, kTraceCap = 8192;
#ifdef XATTN_ATTN_TRACE
__device__ TraceRec* g_attn_trace = nullptr;
#define XATTN_TRACE(ev, arg) trace(ev, arg)
#else
#define XATTN_TRACE(ev, arg) ((void)0)
#endif
#if defined(XATTN_ATTN_TRACE) && defined(XATTN_ATTN_TRACE_STEPS)
#define XATTN_TRACE_STEP(ev, arg) trace(ev, arg)
#else
#define XATTN_TRACE_STEP(ev, arg) ((void)0)
#endif

template <int D>
struct alignas(1024) SmemT {
  unsigned char q[D / 64][kHalfBytes];
  unsigned char k[kStages][D / 64][kHalfBytes];
  unsigned char v[kStages][D / 64][kHalfBytes];
  uint64_t full[kStages];   // TMA: the stage's K and V have landed
  uint64_t empty[kStages];  // TMA: every consumer warp is done with the stage
  uint64_t q_full;          // producer warpgroup: the row's Q tile has landed
  uint64_t q_empty;         // producer warpgroup: every consumer warp holds Q in registers
  uint64_t meta_full;       // producer warpgroup: the row's metadata is written
  uint64_t meta_empty;      // producer warpgroup: every consumer thread has read it
  int meta[4];              // producer warpgroup: the row's kept count, unmasked prefix, key length, half bits
  uint64_t o_full;          // kFlagOStage: every consumer warp has written its O rows into q
};

#ifdef XATTN_ATTN_SM90A
using namespace ptx;
constexpr float kLog2e = 1.4426950408889634f;

// Descriptor for a 128B-swizzled operand: start address, LBO, SBO (bytes), swizzle mode 1. Every
// operand here has SBO 1024 (8 rows of 128 bytes), so the upper word is one constant, and the lower
// word of a tile's k-th slice is the tile's plus the slice's offset in 16-byte units (shared
// addresses stay below 2^18, so the 14-bit start field never carries into LBO): per wgmma one
// integer add instead of the shifts, masks and 64-bit ORs of the whole descriptor (77 of the ~540
// instructions per warp and step of the attention loop, ncu on H100, 2026-11-27).
constexpr uint64_t kDescHi = static_cast<uint64_t>((1024 >> 4) | (1u << 30)) << 32;  // SBO 1024, 128B swizzle
__device__ __forceinline__ uint32_t desc_lo(uint32_t addr, uint32_t lbo) { return (addr >> 4) | ((lbo >> 4) << 16); }
__device__ __forceinline__ uint64_t desc_of(uint32_t lo) { return kDescHi | lo; }

template <typename T>
__device__ __forceinline__ void mma_s(float (&s)[64], uint64_t a, uint64_t b, int acc);
template <>
__device__ __forceinline__ void mma_s<__nv_bfloat16>(float (&s)[64], uint64_t a, uint64_t b, int acc) {
  wgmma::ss_m64n128k16_bf16(s, a, b, acc);
}
template <>
__device__ __forceinline__ void mma_s<__half>(float (&s)[64], uint64_t a, uint64_t b, int acc) {
  wgmma::ss_m64n128k16_f16(s, a, b, acc);
}
template <typename T>
__device__ __forceinline__ void mma_s_rs(float (&s)[64], const uint32_t (&a)[4], uint64_t b, int acc);
template <>
__device__ __forceinline__ void mma_s_rs<__nv_bfloat16>(float (&s)[64], const uint32_t (&a)[4], uint64_t b, int acc) {
  wgmma::rs_m64n128k16_bf16(s, a, b, acc);
}
template <>
__device__ __forceinline__ void mma_s_rs<__half>(float (&s)[64], const uint32_t (&a)[4], uint64_t b, int acc) {
  wgmma::rs_m64n128k16_f16(s, a, b, acc);
}
// O (+)= P V; acc = 0 overwrites O (a row's first block), so O needs no zeroing between rows.
template <typename T, int D>
__device__ __forceinline__ void mma_o(float (&o)[D / 2], const uint32_t (&a)[4], uint64_t b, int acc);
template <>
__device__ __forceinline__ void mma_o<__nv_bfloat16, 128>(float (&o)[64], const uint32_t (&a)[4], uint64_t b, int acc) {
  wgmma::rs_m64n128k16_bf16_tb(o, a, b, acc);
}
template <>
__device__ __forceinline__ void mma_o<__half, 128>(float (&o)[64], const uint32_t (&a)[4], uint64_t b, int acc) {
  wgmma::rs_m64n128k16_f16_tb(o, a, b, acc);
}
template <>
__device__ __forceinline__ void mma_o<__nv_bfloat16, 64>(float (&o)[32], const uint32_t (&a)[4], uint64_t b, int acc) {
  wgmma::rs_m64n64k16_bf16_tb(o, a, b, acc);
}
template <>
__device__ __forceinline__ void mma_o<__half, 64>(float (&o)[32], const uint32_t (&a)[4], uint64_t b, int acc) {
  wgmma::rs_m64n64k16_f16_tb(o, a, b, acc);
}

// Copies rows [row0, row0 + 128) of a [len, D] matrix (row stride ld elements) into a
// swizzled tile; rows at or past `len` are zero-filled.
template <typename T, int D>
__device__ __forceinline__ void load_tile(unsigned char (*tile)[kHalfBytes], const T* g, int64_t ld, int row0,
                                          int len, int tid) {
  constexpr int kChunks = D / 8;  // 16-byte chunks per row
#pragma unroll
  for (int v = 0; v < kRows * kChunks / kThreads; ++v) {
    const int x = tid + v * kThreads;
    const int r = x / kChunks, ch = x % kChunks;
    const int half = ch / 8, cc = ch % 8;
    const int row = row0 + r;
    const bool ok = row < len;
    cp_async16(smem_u32(tile[half]) + r * 128 + ((cc ^ (r & 7)) << 4), g + (ok ? row * ld + ch * 8 : 0), ok);
  }
}

#endif

// kLoad (see Load above): K/V arrive by TMA into stages guarded by full/empty mbarriers, issued by
// a producer warpgroup (v6) or by consumer thread 0 (v4-v5); or all threads copy them with cp.async
// behind a CTA barrier per step (v3, for layouts TMA cannot describe: strides that are not
// multiples of 16 bytes or unaligned pointers).
template <typename T, int D, Load kLoad>
__global__ void __launch_bounds__(cta_threads<kLoad>(), 1)
    sparse_attention_sm90_kernel(const __grid_constant__ CUtensorMap tm_q, const __grid_constant__ CUtensorMap tm_k,
                                 const __grid_constant__ CUtensorMap tm_v, const __grid_constant__ CUtensorMap tm_o,
                                 const AttentionParams p, const int flags) {
#ifdef XATTN_ATTN_SM90A
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  SmemT<D>& sm = *reinterpret_cast<SmemT<D>*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t(1023));
  constexpr int kO = D / 2;  // O accumulators per thread (m64nD)
#ifdef XATTN_ATTN_TRACE
  __shared__ TraceRec* trace_at[kTraceWarps];  // the warp's next record
  if (threadIdx.x < kTraceWarps)
    trace_at[threadIdx.x] = g_attn_trace + (static_cast<int64_t>(blockIdx.x) * kTraceWarps + threadIdx.x) * kTraceCap;
  __syncthreads();
  auto trace = [&](int ev, int arg) {  // a full region keeps overwriting its last record
    const int wi = threadIdx.x / 32;
    TraceRec* r = trace_at[wi];
    TraceRec* last = g_attn_trace + (static_cast<int64_t>(blockIdx.x) * kTraceWarps + wi + 1) * kTraceCap - 1;
    uint32_t t;
    asm volatile("mov.u32 %0, %%clock;" : "=r"(t));
    *r = TraceRec{t, static_cast<uint32_t>(ev) | static_cast<uint32_t>(arg) << 8};
    __syncwarp();
    trace_at[wi] = r < last ? r + 1 : r;
  };
#endif
  constexpr bool kTma = kLoad != Load::kCpAsync;
  constexpr bool kProducerWG = kLoad == Load::kTmaProducer;

  const int qb = (p.q_len + kRows - 1) / kRows, kb = (p.k_len + kRows - 1) / kRows;
  const int total_rows = p.batch * p.q_heads * qb;
  // Warpgroup index, warp-uniform for ptxas (setmaxnreg and wgmma need warpgroup-uniform branches).
  const int wg_cta = __shfl_sync(0xffffffffu, static_cast<int>(threadIdx.x) / 128, 0);
  const int wg = kProducerWG ? wg_cta - 1 : wg_cta;  // consumer warpgroup (-1: the producer)
  const int tid = kProducerWG ? static_cast<int>(threadIdx.x) - 128 : static_cast<int>(threadIdx.x);  // among consumers
  const int warp = (threadIdx.x % 128) / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, c = lane % 4;
  const bool producer = threadIdx.x == 0;
  const int len_all = p.k_len;
  // Rows w = (b * Hq + h) * Qb + I' in launch order, I' = I, or Qb - 1 - I for causal rows (they
  // grow with I: the longest start first and the short ones fill the tail). The producer-warpgroup
  // kernel deals the rows of a 1-D grid of G CTAs in waves of G rows, each wave in the other
  // direction than the one before (a snake): CTA x takes rows x, 2G - 1 - x, 2G + x, 4G - 1 - x,
  // ... One each when the grid has a CTA per row, or many when it is persistent (one CTA per SM,
  // see launch_kernel); then its producer loads the next row's Q and first K/V blocks while the
  // consumers finish the current row, and the consumers score the next row's first block during
  // this row's last PV. The snake keeps the rows' time order (a wave stays within one or two KV
  // heads: mixing heads cost the 20% mode ~3.7%, NOTES.md session 16) and evens out the CTAs' sums:
  // against rows x, x + G, ... (H100, 2026-11-28, harness, causal 8K, TF/s, three runs): dense
  // 593.2 / 591.4 / 589.2 vs 578.6 / 574.1 / 573.8, 20% 511.9 / 510.6 / 509.8 vs 504.1 / 502.3 /
  // 501.9, 35% +1.4%, 25% -0.5%. The other kernels take one row per CTA from the (Qb, Hq, B) grid.
  const int w_first = kProducerWG ? static_cast<int>(blockIdx.x)
                                  : static_cast<int>(blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z));
  const int w_step = kProducerWG ? static_cast<int>(gridDim.x) : 1;
  auto w_of = [&](int jj) { return jj * w_step + ((jj & 1) ? w_step - 1 - w_first : w_first); };  // the jj-th row
  const int n_rows = [&] {
    if (!kProducerWG) return 1;
    const int waves = total_rows / w_step, rest = total_rows % w_step;  // rest: rows of the last wave
    return waves + (((waves & 1) ? w_step - 1 - w_first : w_first) < rest ? 1 : 0);
  }();
  const int off = p.causal ? p.k_len - p.q_len : 0;
  // A block is full when every key of it is below the key length and, causal, on or below the
  // diagonal of the block's first query row; only the others need the per-element mask.
  auto is_full_in = [&](int block, int row0, int lenv) {
    const int key0 = block * kKeys;
    return key0 + kKeys <= lenv && (!p.causal || key0 + kKeys - 1 <= row0 + off);
  };
  struct Row {
    int I, h, b, hk;
    int64_t id;  // (b * Hq + h) * Qb + I: the row's count and index list
    const int32_t* idx;
    int len, count, n_full;  // read from memory (row_of, find_n_full)
    int half;  // producer kernel: the last block needs only its first 64 keys (bit wg: consumer warpgroup wg)
  };
  // A row's launch-order index w = (b * Hq + h) * Qb + ip as its digits.
  struct Pos {
    int ip, h, b;
  };
  auto pos_of = [&](int w) {
    const int q = w / qb, b = q / p.q_heads;
    return Pos{w - q * qb, q - b * p.q_heads, b};
  };
  auto row_in = [&](Pos x) {  // the row's place: arithmetic only
    Row r;
    const int ip = x.ip;
    r.h = x.h;
    r.b = x.b;
    r.I = p.causal ? qb - 1 - ip : ip;
    r.hk = r.h / (p.q_heads / p.kv_heads);
    r.id = (static_cast<int64_t>(r.b) * p.q_heads + r.h) * qb + r.I;
    r.idx = p.indices + r.id * kb;
    r.len = r.count = r.n_full = r.half = 0;
    return r;
  };
  auto row_at = [&](int w) { return row_in(pos_of(w)); };
  auto row_of = [&](int w) {  // place, key length and kept count (dependent global loads)
    Row r = row_at(w);
    r.len = p.key_lengths ? min(max(p.key_lengths[r.b], 0), len_all) : len_all;
    r.count = p.counts[r.id];
    return r;
  };
  // Blocks [0, n_full) need no mask: the list is ascending, so the blocks that reach past the key
  // length or the diagonal are a suffix of it (at most a few blocks). A whole warp calls this:
  // each lane tests one of the last 32 blocks (one load, not a chain of dependent ones), and the
  // ballot's first full block from the end bounds the suffix. The steady-state loop then has
  // neither the mask branch nor the index load.
  auto find_n_full = [&](const Row& r) {
    int n = r.count;
    for (int end = r.count; end > 0; end -= 32) {
      const int t = end - 1 - lane;
      const unsigned masked = __ballot_sync(0xffffffffu, t >= 0 && !is_full_in(r.idx[t], r.I * kRows, r.len));
      n = end - (masked == 0xffffffffu ? 32 : __ffs(~masked) - 1);
      if (masked != 0xffffffffu) break;
    }
    return (flags & kFlagMaskAll) ? 0 : n;
  };

  if constexpr (kTma) {
    if (producer) {
#pragma unroll
      for (int st = 0; st < kStages; ++st) {
        tma::mbar_init(smem_u32(&sm.full[st]), 1);
        tma::mbar_init(smem_u32(&sm.empty[st]), kThreads / 32);
      }
      tma::mbar_init(smem_u32(&sm.q_full), 1);
      tma::mbar_init(smem_u32(&sm.q_empty), kThreads / 32);
      tma::mbar_init(smem_u32(&sm.meta_full), 1);
      tma::mbar_init(smem_u32(&sm.meta_empty), kThreads);
      tma::mbar_init(smem_u32(&sm.o_full), kThreads / 32);
      asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    __syncthreads();
  }
  if constexpr (kProducerWG) {
    if (wg < 0) {  // the producer warpgroup: warp 0 streams every row's Q and kept K/V blocks, warp 1 stores O
      // 24 is the most it can keep: the launch gives every thread 168 registers (64,512 in all),
      // and the consumers' 240 need (240 - 168) x 256 = (168 - 24) x 128 more; with 32 here their
      // setmaxnreg.inc waits forever (H100, 2026-11-27: every GPU test timed out).
      asm volatile("setmaxnreg.dec.sync.aligned.u32 24;\n" ::: "memory");
      if (warp == 0) {
        // Lane 0 issues the copies; the lanes fetch the index list 32 entries per load (lane i
        // holds entry base + i), so a block's copy does not wait on its own dependent index load.
        // Same-process A/B against one load per block (H100, 2026-11-27, TF/s): causal-64k dense
        // 621.6 vs 609.5, 25% 583.6 vs 574.8, causal-8k dense 563.7 vs 553.2; short sparse rows
        // within 1% (8K 25% 469.7 vs 469.6): the producer is not what holds those back.
        int n = 0, j = 0;  // K/V stage uses and rows so far
        for (; j < n_rows; ++j) {
          const int w = w_of(j);
          // The row's metadata goes to the consumers with its Q: its loads run here, ahead, instead
          // of stalling both consumer warpgroups at every row start (~4 dependent L2 reads). Lane
          // 0's arrive on meta_full releases the stores; each consumer thread reads them after
          // its wait and arrives on meta_empty, which the next row's stores wait for.
          XATTN_TRACE(40, j);
          Row r = row_of(w);
          r.n_full = find_n_full(r);
          // Half bits: bit i is set when consumer warpgroup i's 64 rows see at most the first 64
          // keys of the row's last block (causal, the diagonal block of an aligned row for
          // warpgroup 0; or a key tail of at most 64): its softmax there takes columns 0..63 only
          // and its PV 4 of 8 k-slices.
          int half = 0;
          if ((flags & kFlagHalfLast) && r.count > 0) {
            const int key0 = r.idx[r.count - 1] * kKeys;
            const int seen0 = p.causal ? min(r.len, r.I * kRows + 64 + off) - key0 : r.len - key0;
            const int seen1 = p.causal ? min(r.len, r.I * kRows + 128 + off) - key0 : seen0;
            half = (seen0 <= 64 ? 1 : 0) | (seen1 <= 64 ? 2 : 0);
          }
          if (j > 0) tma::mbar_wait(smem_u32(&sm.meta_empty), (j - 1) & 1);
          if (producer) {
            sm.meta[0] = r.count;
            sm.meta[1] = r.n_full;
            sm.meta[2] = r.len;
            sm.meta[3] = half;
            tma::mbar_arrive(smem_u32(&sm.meta_full));
          }
          XATTN_TRACE(41, r.count);
          if (j > 0) tma::mbar_wait(smem_u32(&sm.q_empty), (j - 1) & 1);  // the consumers hold the last Q
          XATTN_TRACE(42, j);
          if (producer) {
            const uint32_t qf = smem_u32(&sm.q_full);
            tma::mbar_expect_tx(qf, kRows * D * sizeof(T));
#pragma unroll
            for (int half = 0; half < D / 64; ++half)
              tma::load_4d(smem_u32(sm.q[half]), &tm_q, half * 64, r.I * kRows, r.h, r.b, qf);
          }
          int window = 0;
          for (int t = 0; t < r.count; ++t, ++n) {
            if (t % 32 == 0) window = t + lane < r.count ? r.idx[t + lane] : 0;
            const int key0 = __shfl_sync(0xffffffffu, window, t % 32) * kKeys;
            const int st = n % kStages;
            XATTN_TRACE(43, t);
            if (n >= kStages) tma::mbar_wait(smem_u32(&sm.empty[st]), ((n - kStages) / kStages) & 1);
            XATTN_TRACE(44, t);
            if (producer) {
              const uint32_t full = smem_u32(&sm.full[st]);
              tma::mbar_expect_tx(full, 2u * kKeys * D * sizeof(T));
#pragma unroll
              for (int half = 0; half < D / 64; ++half) {
                tma::load_4d(smem_u32(sm.k[st][half]), &tm_k, half * 64, key0, r.hk, r.b, full);
                tma::load_4d(smem_u32(sm.v[st][half]), &tm_v, half * 64, key0, r.hk, r.b, full);
              }
            }
            __syncwarp();
          }
        }
      } else if (warp == 1 && (flags & kFlagOStage)) {
        // The storer: the O tiles the consumers leave in the Q buffer go out by TMA (whole lines;
        // same-process A/B, H100, TF/s, staged vs the consumers' stores: causal-8k 25% 498.5 vs
        // 461.0, 10% 401.2 vs 349.7, dense 559.2 vs 542.4; causal-16k 25% 539.5 vs 512.7), and
        // once a copy has read the buffer the producer may load the next Q into it (this warp
        // arrives on q_empty for every consumer warp). The consumers stage the O of every row with
        // kept blocks, and this warp walks the same rows: the k-th staged tile is o_full's k-th
        // phase, and the (k+1)-th cannot complete before this warp's release of the k-th (the
        // consumers first need the Q that release lets in, or, at the CTA's last row, wait for
        // the release itself).
        int k = 0;
        for (int jj = 0; jj < n_rows; ++jj) {
          const Row r = row_of(w_of(jj));
          if (r.count == 0) continue;
          XATTN_TRACE(50, k);
          tma::mbar_wait(smem_u32(&sm.o_full), k++ & 1);
          XATTN_TRACE(51, k);
          if (lane == 0) {
#pragma unroll
            for (int half = 0; half < D / 64; ++half)
              tma::store_4d(&tm_o, smem_u32(sm.q[half]), half * 64, r.I * kRows, r.h, r.b);
            tma::bulk_commit();
            tma::bulk_wait_read<0>();
            tma::mbar_arrive_count(smem_u32(&sm.q_empty), kThreads / 32);
          }
          __syncwarp();
          XATTN_TRACE(52, k);
        }
        if (lane == 0) tma::bulk_wait_all<0>();
      }
      return;
    }
    asm volatile("setmaxnreg.inc.sync.aligned.u32 240;\n" ::: "memory");
  }

  // Softmax state, O, S/P and Q fragments outlive a row: the persistent kernel scores the next
  // row's first block while this row's last PV runs (carried = true at the next row's start).
  const float scale2 = p.scale * kLog2e;
  const float slack = (flags & kFlagLazyRescale) ? 8.f : 0.f;  // see softmax_in
  float m_a = -INFINITY, m_b = -INFINITY, l_a = 0.f, l_b = 0.f;
  float o[kO];
  float s[64];        // S of the block being softmaxed (P in place afterwards)
  uint32_t pa[8][4];  // P of the block whose PV is issued next, as 8 k16 A fragments
  float fa = 1.f, fb = 1.f;  // O rescale factors that go with pa
  // TMA path: Q lives in registers as A fragments (read once with ldmatrix from the swizzled
  // tile), which takes Q's share of shared-memory bandwidth off every S GEMM. The cp.async path
  // has no registers to spare for it (244 already) and keeps Q in shared memory.
  uint32_t qf[kTma ? D / 16 : 1][4];
  auto load_q_fragments = [&] {
    if constexpr (kTma) {
      const int row = wg * 64 + warp * 16 + (lane % 8) + ((lane / 8) % 2) * 8;
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        const int c16 = (2 * kk + lane / 16) % 8;
        ldmatrix_x4(qf[kk], sm.q[kk / 4] + row * 128 + ((c16 ^ (row & 7)) << 4));
      }
    }
  };
  bool carried = false;  // this row's first block was scored at the end of the previous row
  bool q_taken = false;  // this row's Q and metadata were taken at the end of the previous row
  Row next{};
  int n0 = 0, j = 0;  // K/V stage uses and rows before this one (the producer's counters)
  // Producer kernel: every row, kept blocks or not, takes its Q (the j-th) and metadata, and hands
  // the buffer back (so every consumer warp arrives once per row), or leaves that to the storer
  // when this row's end stages the previous row's O in the buffer (release = false).
  const bool o_stage = kProducerWG && (flags & kFlagOStage) != 0;
  auto take_q = [&](int ordinal, Row& r, bool release) {
    XATTN_TRACE(2, ordinal);
    tma::mbar_wait(smem_u32(&sm.meta_full), ordinal & 1);
    XATTN_TRACE(3, ordinal);
    r.count = sm.meta[0];
    r.n_full = sm.meta[1];
    r.len = sm.meta[2];
    r.half = (sm.meta[3] >> wg) & 1;
    tma::mbar_arrive(smem_u32(&sm.meta_empty));
    tma::mbar_wait(smem_u32(&sm.q_full), ordinal & 1);
    XATTN_TRACE(4, ordinal);
    load_q_fragments();
    __syncwarp();
    if (release && lane == 0) tma::mbar_arrive(smem_u32(&sm.q_empty));
    XATTN_TRACE(5, ordinal);
  };
  // The consumers walk their rows (w_of) as digits: each step's digits are added with carries (a
  // few adds and compares per row) instead of integer divisions by runtime values in every warp
  // (~90 instructions per warp and row, ncu on H100, 2026-11-27). The producer and the storer
  // divide: they have the time, and not the registers to keep the digits. The snake has two
  // steps: 2G - 1 - 2x after a row of an even wave, 2x + 1 after one of an odd wave.
  Pos pw = pos_of(w_first);
  const Pos stride_even = pos_of(kProducerWG ? 2 * w_step - 1 - 2 * w_first : 1),
            stride_odd = pos_of(2 * w_first + 1);
  auto pos_next = [&](Pos x, int jj) {  // row jj's place -> row jj + 1's
    const Pos w_stride = (jj & 1) ? stride_odd : stride_even;
    x.ip += w_stride.ip;
    x.h += w_stride.h;
    x.b += w_stride.b;
    if (x.ip >= qb) x.ip -= qb, ++x.h;
    if (x.h >= p.q_heads) x.h -= p.q_heads, ++x.b;
    return x;
  };
  // The row loop counts rows (j), not launch indices: the bound is uniform across the CTA, and a
  // per-row w next to the consumers' 240 registers went to local memory (4 bytes, read and
  // written every row).
  for (; j < n_rows; pw = pos_next(pw, j), ++j) {
    XATTN_TRACE(1, j);
    const Row row = [&] {
      if constexpr (kProducerWG) {
        if (q_taken) return next;
        Row r = row_in(pw);
        take_q(j, r, true);
        return r;
      } else {
        return row_of(w_of(j));
      }
    }();
    const int I = row.I, h = row.h, b = row.b, hk = row.hk, len = row.len, count = row.count;
    XATTN_TRACE(6, count | (carried ? 1 << 16 : 0));
    const int32_t* idx = row.idx;
    const int r0 = I * kRows;
    const int row_a = r0 + wg * 64 + warp * 16 + g, row_b = row_a + 8;

    const T* qg = static_cast<const T*>(p.q) + b * p.q_stride_b + h * p.q_stride_h;
    const T* kg = static_cast<const T*>(p.k) + b * p.k_stride_b + hk * p.k_stride_h;
    const T* vg = static_cast<const T*>(p.v) + b * p.v_stride_b + hk * p.v_stride_h;

    // cp.async groups, oldest first: {Q, K0, V0}, {K1, V1}, then one {K(t+2), V(t+2)} per step
    // (empty past the end, so the waits below stay uniform).
    auto load_kv = [&](int t) {
      if (t < count) {
        load_tile<T, D>(sm.k[t % kStages], kg, p.k_stride_l, idx[t] * kKeys, p.k_len, tid);
        load_tile<T, D>(sm.v[t % kStages], vg, p.v_stride_l, idx[t] * kKeys, p.k_len, tid);
      }
      cp_async_commit();
    };
    // TMA, inline kernel: thread 0 fills stage t % 3 once every consumer warp has released its
    // previous use (step t - 3), then the full barrier's transaction count tracks the bytes landing.
    auto tma_kv = [&](int t) {
      if (t >= count) return;
      const int st = t % kStages;
      if (t >= kStages) tma::mbar_wait(smem_u32(&sm.empty[st]), ((t - kStages) / kStages) & 1);
      const uint32_t full = smem_u32(&sm.full[st]);
      tma::mbar_expect_tx(full, 2u * kKeys * D * sizeof(T));
      const int key0 = idx[t] * kKeys;
#pragma unroll
      for (int half = 0; half < D / 64; ++half) {
        tma::load_4d(smem_u32(sm.k[st][half]), &tm_k, half * 64, key0, hk, b, full);
        tma::load_4d(smem_u32(sm.v[st][half]), &tm_v, half * 64, key0, hk, b, full);
      }
    };
    if constexpr (kLoad == Load::kTmaInline) {
      if (producer) {
        tma_kv(0);
        tma_kv(1);
      }
      __syncwarp();
      load_tile<T, D>(sm.q, qg, p.q_stride_l, r0, p.q_len, tid);
      cp_async_commit();
    } else if constexpr (kLoad == Load::kCpAsync) {
      load_tile<T, D>(sm.q, qg, p.q_stride_l, r0, p.q_len, tid);
      load_kv(0);  // same group as Q
      load_kv(1);
    }
    // Stage and full-barrier parity of this row's block t in the K/V stream (rows before it used
    // n0 stages), as a pair that advances by one per block (no division by 3 per use).
    struct Slot {
      int st;
      uint32_t ph;
    };
    auto advance = [](Slot x) { return x.st == kStages - 1 ? Slot{0, x.ph ^ 1u} : Slot{x.st + 1, x.ph}; };
    const Slot slot0{n0 % kStages, static_cast<uint32_t>(n0 / kStages) & 1u};
    auto wait_full = [&](Slot x) { tma::mbar_wait(smem_u32(&sm.full[x.st]), x.ph); };

    if (!carried) {  // (O needs no reset: the row's first PV overwrites it)
      m_a = m_b = -INFINITY;
      l_a = l_b = 0.f;
    }
    // Lower descriptor words of stage 0's K and V tiles and of this warpgroup's Q rows (desc_lo).
    constexpr uint32_t kStageLo = (D / 64) * kHalfBytes / 16;  // one stage's tile, 16-byte units
    const uint32_t k_lo = desc_lo(smem_u32(sm.k[0][0]), 16), v_lo = desc_lo(smem_u32(sm.v[0][0]), kHalfBytes);
    const uint32_t q_lo = desc_lo(smem_u32(sm.q[0]) + wg * 64 * 128, 16);
    auto issue_s = [&](Slot x) {  // s = Q K^T of the block in stage x for this warpgroup's 64 rows (async)
      wgmma::fence_operand(s);
      wgmma::fence();
      const uint32_t kl = k_lo + x.st * kStageLo;
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        const uint32_t koff = ((kk / 4) * kHalfBytes + (kk % 4) * 32) / 16;
        if constexpr (kTma)
          mma_s_rs<T>(s, qf[kk], desc_of(kl + koff), kk > 0);
        else
          mma_s<T>(s, desc_of(q_lo + koff), desc_of(kl + koff), kk > 0);
      }
      wgmma::commit();
    };
    // Mask (only blocks that reach past the key length or the causal diagonal), online softmax with
    // P left in s as floats, and the factors that rescale O.
    // kMasked: the block may reach past the key length or the diagonal (masks per element, and a
    // row may stay at -inf); otherwise every score is finite and the -inf guards are not needed.
    // Block t of the row with index list idxv, key length lenv and this thread's rows ra, rb (the
    // current row's, or the next row's for its first block scored at the end of this one).
    // half (masked blocks only): the row's last block where this warpgroup sees at most keys
    // 0..63: columns 64..127 are neither masked nor exponentiated, since they count nowhere (the
    // row's max and sum skip them, and its PV skips their 4 k-slices, see issue_pv).
    auto softmax_in = [&](const int32_t* idxv, int t, int lenv, int ra, int rb, auto masked, bool half_in) {
      constexpr bool kMasked = decltype(masked)::value;
      const bool half = kMasked && kProducerWG && half_in;
      wgmma::fence_operand(s);
      float tmax_a = -INFINITY, tmax_b = -INFINITY;
      // Masked block: row a sees the block's columns below lim_a (key < length and, causal,
      // key <= row + off), so each element is one compare of a constant with a per-thread bound
      // (the column is j * 8 + 2c + (z & 1); 2c is folded into the bound).
      int lim_a = 0, lim_b = 0;
      if constexpr (kMasked) {
        const int key0 = idxv[t] * kKeys;
        lim_a = lim_b = lenv - key0;
        if (p.causal) {
          lim_a = min(lim_a, ra + off + 1 - key0);
          lim_b = min(lim_b, rb + off + 1 - key0);
        }
        lim_a -= 2 * c;
        lim_b -= 2 * c;
      }
      auto mask_max = [&](int j) {
        if constexpr (kMasked) {
#pragma unroll
          for (int z = 0; z < 4; ++z)
            if (j * 8 + (z & 1) >= (z < 2 ? lim_a : lim_b)) s[4 * j + z] = -INFINITY;
        }
        tmax_a = fmaxf(tmax_a, fmaxf(s[4 * j], s[4 * j + 1]));
        tmax_b = fmaxf(tmax_b, fmaxf(s[4 * j + 2], s[4 * j + 3]));
      };
#pragma unroll
      for (int j = 0; j < 8; ++j) mask_max(j);
      if (!half) {
#pragma unroll
        for (int j = 8; j < 16; ++j) mask_max(j);
      }
#pragma unroll
      for (int x = 1; x < 4; x <<= 1) {
        tmax_a = fmaxf(tmax_a, __shfl_xor_sync(0xffffffffu, tmax_a, x));
        tmax_b = fmaxf(tmax_b, __shfl_xor_sync(0xffffffffu, tmax_b, x));
      }
      // Lazy rescaling: the reference maximum m moves only when the block's maximum exceeds it by
      // more than `slack` (log2 units). P = 2^(score - m) then stays below 2^slack (256 by
      // default: bf16 keeps its relative precision, the fp32 sums have the range), m + log2(l)
      // is the same LSE, and most steps leave fa = fb = 1, so issue_pv skips O's multiplies.
      // Top-ratio rows keep their highest-scoring blocks, which kept raising the exact maximum:
      // the multiplies ran in ~96% of the steps at causal 8K, 20% (64% dense; ncu, H100,
      // 2026-11-27). slack = 0 is the exact maximum (XATTN_ATTENTION_LAZY_RESCALE=0).
      // m = -inf (no finite score yet): a finite block maximum gives +inf > slack, and a block
      // that is still all -inf gives NaN, which compares false.
      const float bm_a = fmaxf(m_a, tmax_a * scale2), bm_b = fmaxf(m_b, tmax_b * scale2);
      const float nm_a = bm_a - m_a > slack ? bm_a : m_a, nm_b = bm_b - m_b > slack ? bm_b : m_b;
      float sub_a = nm_a, sub_b = nm_b;
      if constexpr (kMasked) {
        fa = nm_a == -INFINITY ? 0.f : fast_exp2(m_a - nm_a);
        fb = nm_b == -INFINITY ? 0.f : fast_exp2(m_b - nm_b);
        sub_a = nm_a == -INFINITY ? 0.f : nm_a;
        sub_b = nm_b == -INFINITY ? 0.f : nm_b;
      } else {  // nm finite; m = -inf (first block) gives exp2(-inf) = 0
        fa = fast_exp2(m_a - nm_a);
        fb = fast_exp2(m_b - nm_b);
      }
      float ps_a = 0.f, ps_b = 0.f;
      auto exp_sum = [&](int j) {
        s[4 * j] = fast_exp2(fmaf(s[4 * j], scale2, -sub_a));
        s[4 * j + 1] = fast_exp2(fmaf(s[4 * j + 1], scale2, -sub_a));
        s[4 * j + 2] = fast_exp2(fmaf(s[4 * j + 2], scale2, -sub_b));
        s[4 * j + 3] = fast_exp2(fmaf(s[4 * j + 3], scale2, -sub_b));
        ps_a += s[4 * j] + s[4 * j + 1];
        ps_b += s[4 * j + 2] + s[4 * j + 3];
      };
#pragma unroll
      for (int j = 0; j < 8; ++j) exp_sum(j);
      if (!half) {
#pragma unroll
        for (int j = 8; j < 16; ++j) exp_sum(j);
      }
      l_a = l_a * fa + ps_a;
      l_b = l_b * fb + ps_b;
      m_a = nm_a;
      m_b = nm_b;
    };
    auto softmax = [&](int t, auto masked) { softmax_in(idx, t, len, row_a, row_b, masked, t + 1 == count && row.half); };
    auto to_pa = [&] {
#pragma unroll
      for (int j = 0; j < 16; ++j) {
        pa[j / 2][(j % 2) * 2] = pack2<T>(s[4 * j], s[4 * j + 1]);
        pa[j / 2][(j % 2) * 2 + 1] = pack2<T>(s[4 * j + 2], s[4 * j + 3]);
      }
    };
    // Rescales O (no PV in flight) and issues O += P V for the block in stage x (async); the row's
    // first block (first = true) writes O = P V instead, so nothing is rescaled or reset; half:
    // keys 64..127 are masked for every row of the warpgroup, so their 4 k-slices are skipped
    // (their pa holds no P: see softmax_in).
    auto issue_pv = [&](Slot x, bool first, bool half_in) {
      const bool half = kProducerWG && __shfl_sync(0xffffffffu, half_in, 0);  // warp-uniform for ptxas
      wgmma::fence_operand(o);
      // Once the running maxima settle most steps leave them unchanged: skip the multiplies when
      // no row of the warp moved (warp-uniform branch).
      if (!first && !__all_sync(0xffffffffu, fa == 1.f && fb == 1.f)) {
#pragma unroll
        for (int j = 0; j < kO / 4; ++j) {
          o[4 * j] *= fa, o[4 * j + 1] *= fa, o[4 * j + 2] *= fb, o[4 * j + 3] *= fb;
        }
      }
      wgmma::fence_operand(o);
      wgmma::fence();
      const uint32_t vl = v_lo + x.st * kStageLo;
#pragma unroll
      for (int kk = 0; kk < kKeys / 32; ++kk) mma_o<T, D>(o, pa[kk], desc_of(vl + kk * 16 * 128 / 16), kk > 0 || !first);
      if (!half) {
#pragma unroll
        for (int kk = kKeys / 32; kk < kKeys / 16; ++kk) mma_o<T, D>(o, pa[kk], desc_of(vl + kk * 16 * 128 / 16), 1);
      }
      wgmma::commit();
    };

    // Ping-pong (producer-warpgroup kernel, flag kFlagPingPong, the default): the two consumer warpgroups take turns
    // issuing their GEMMs (named barriers 2 and 3, FA3's scheduler barriers), so one warpgroup's
    // softmax runs while the other's GEMMs hold the tensor cores. Each warpgroup issues count + 1
    // times; warpgroup 1 arrives once up front so warpgroup 0 goes first, and skips its last arrive so
    // that no arrival is left pending at exit.
    const bool pp = kProducerWG && (flags & kFlagPingPong) != 0;
    auto my_turn = [&] {
      if (pp) asm volatile("bar.sync %0, %1;\n" ::"r"(2 + wg), "n"(kThreads) : "memory");
    };
    auto pass_turn = [&](bool last) {
      if (pp && !(last && wg == 1)) asm volatile("bar.arrive %0, %1;\n" ::"r"(3 - wg), "n"(kThreads) : "memory");
    };
    // A row whose first block was carried continues the previous row's turns (one chain of turns
    // per run of carried rows: the initial arrive at its start, the skipped one at its end).
    if (pp && wg == 1 && count > 0 && !carried) asm volatile("bar.arrive 2, %0;\n" ::"n"(kThreads) : "memory");

    const int n_full = kProducerWG ? row.n_full : find_n_full(row);  // the others: after the first loads
    constexpr std::true_type kMask{};
    constexpr std::false_type kNoMask{};

    XATTN_TRACE(7, 0);
    if (count > 0 && !carried) {
      if constexpr (kProducerWG) {
        wait_full(slot0);
      } else if constexpr (kTma) {
        cp_async_wait<0>();  // Q
        __syncthreads();
        load_q_fragments();
        wait_full(slot0);
      } else {
        cp_async_wait<1>();  // Q, K0, V0
        wgmma::fence_proxy_async();
        __syncthreads();
      }
      my_turn();
      issue_s(slot0);
      pass_turn(false);
      wgmma::wait<0>();
      if (n_full > 0) softmax(0, kNoMask);
      else softmax(0, kMask);
      to_pa();
      XATTN_TRACE(8, 0);
    }
    // Per step, as FA3 orders it: S(t+1) and PV(t) go to the tensor cores back to back; the
    // softmax of block t+1 is written to run while PV(t) is still in flight (it reads pa and writes
    // o, the softmax only s; ptxas waits for PV(t) before the exponentials, see the top); P is packed into
    // pa once PV(t) is done. x is block t's slot; the step moves it on to block t + 1.
    auto step = [&](int t, Slot& x, auto masked) {
      const Slot y = advance(x);
      if constexpr (kTma) {
        XATTN_TRACE_STEP(30, t);
        wait_full(y);  // K(t+1), V(t+1) landed
        XATTN_TRACE_STEP(31, t);
        my_turn();
        XATTN_TRACE_STEP(32, t);
        issue_s(y);
        if constexpr (!kProducerWG) {
          if (producer) tma_kv(t + 2);
          __syncwarp();  // warp 0 reconverges before the next warpgroup-wide wgmma
        }
      } else {
        cp_async_wait<0>();  // K(t+1), V(t+1)
        wgmma::fence_proxy_async();
        __syncthreads();     // copies visible; every warpgroup is past step t-1, so stage (t+2)%3 is free
        issue_s(y);
        load_kv(t + 2);
      }
      issue_pv(x, t == 0, false);
      pass_turn(false);
      XATTN_TRACE_STEP(33, t);
      wgmma::wait<1>();    // S(t+1) done
      XATTN_TRACE_STEP(34, t);
      softmax(t + 1, masked);
      XATTN_TRACE_STEP(35, t);
      wgmma::wait<0>();    // PV(t) done
      XATTN_TRACE_STEP(36, t);
      wgmma::fence_operand(o);
      if constexpr (kTma) {
        __syncwarp();
        if (lane == 0) tma::mbar_arrive(smem_u32(&sm.empty[x.st]));  // this warp is done with block t's stage
      }
      to_pa();
      x = y;
    };
    int t = 0;
    Slot cur = slot0;  // block t's
    for (; t + 1 < n_full; ++t) step(t, cur, kNoMask);
    for (; t + 1 < count; ++t) step(t, cur, kMask);
    XATTN_TRACE(9, count);
    // (count > 0: cur is the last block's slot.)
    // This row's softmax state, for its epilogue (the next row's first block may overwrite it).
    float em_a = m_a, em_b = m_b, el_a = l_a, el_b = l_b;
    // Persistent kernel: when the next row has kept blocks too, its first S goes to the tensor
    // cores with this row's last PV and its softmax runs while that PV does, instead of each row
    // starting and ending with the tensor cores idle (S(0) + softmax alone, then the last PV
    // alone): at 8K causal, 25% density, rows keep ~8 blocks and the two ends cost ~2 of them.
    bool carry = false;
    q_taken = false;
    if constexpr (kProducerWG) {
      if (count > 0 && j + 1 < n_rows) {
        // This row's last S retired at its last step (or its first block's wait).
        next = row_in(pos_next(pw, j));
        take_q(j + 1, next, !o_stage);
        q_taken = true;
        carry = next.count > 0;
      }
    }
    // One if/else, not two ifs on carry: ptxas follows both branches' paths, and with a second
    // `if (!carry)` it saw the carried PV still in flight at the other PV's rescale of O and
    // serialized every wgmma of the kernel (C7514; H100, 2026-11-27: dense 675 -> 450 TF/s).
    if (carry) {
      m_a = m_b = -INFINITY;
      l_a = l_b = 0.f;
      const int nra = next.I * kRows + wg * 64 + warp * 16 + g;
      wait_full(advance(cur));  // the next row's block 0 follows this row's blocks in the stream
      XATTN_TRACE(10, 0);
      my_turn();
      XATTN_TRACE(11, 0);
      issue_s(advance(cur));
      issue_pv(cur, count == 1, row.half);
      pass_turn(false);
      XATTN_TRACE(12, 0);
      wgmma::wait<1>();
      XATTN_TRACE(13, 0);
      if (next.n_full > 0) softmax_in(next.idx, 0, next.len, nra, nra + 8, kNoMask, false);
      else softmax_in(next.idx, 0, next.len, nra, nra + 8, kMask, next.count == 1 && next.half);
      XATTN_TRACE(14, 0);
    } else if (count > 0) {
      my_turn();
      issue_pv(cur, count == 1, row.half);
      pass_turn(true);
    }
    wgmma::wait<0>();
    XATTN_TRACE(15, 0);
    wgmma::fence_operand(o);
    cp_async_wait<0>();
    if constexpr (kProducerWG) {  // the last block's stage goes back too: the next row's blocks reuse it
      if (count > 0) {
        __syncwarp();
        if (lane == 0) tma::mbar_arrive(smem_u32(&sm.empty[cur.st]));
      }
    }
    if (carry) to_pa();  // the next row's first P (its PV is issued with that row's second S)
    XATTN_TRACE(16, 0);

#pragma unroll
    for (int x = 1; x < 4; x <<= 1) {
      el_a += __shfl_xor_sync(0xffffffffu, el_a, x);
      el_b += __shfl_xor_sync(0xffffffffu, el_b, x);
    }
    const float ia = el_a > 0.f ? fast_rcp(el_a) : 0.f, ib = el_b > 0.f ? fast_rcp(el_b) : 0.f;
    XATTN_TRACE(17, 0);
    if (count == 0) {  // no PV wrote O: zeros (O holds the previous row's values or nothing)
#pragma unroll
      for (int i = 0; i < kO; ++i) o[i] = 0.f;
    }
    if (o_stage && count > 0) {
      // O through the Q buffer, in Q's swizzled layout, for the storer's TMA copy; conflict-free:
      // the 8 rows of a warp's store land in 8 different 16-byte bank groups. No barrier: a warp
      // writes the same 16 rows of the buffer its ldmatrix just read the next Q from (take_q),
      // and the next row's S reads Q from registers. The CTA's last row took no next Q: it waits
      // until the buffer is handed back for the last time (q_empty's j-th phase: by the storer
      // once it has read the previous row's O out of it, or by the consumers at this row's
      // take_q), and its O leaves by TMA as well instead of 64 scattered stores per thread.
      // (A bar.sync of both consumer warpgroups here, until 2026-11-27, realigned them at every
      // row end; same-process A/B without vs with it, H100, TF/s, two runs: causal-8k 25% 504.2 /
      // 506.3 vs 496.5 / 493.7, 35% 509.9 / 499.2 vs 488.6 / 490.6, causal-16k 25% 544.1 / 539.4
      // vs 531.0 / 515.2.)
      if (!q_taken) tma::mbar_wait(smem_u32(&sm.q_empty), j & 1);
      XATTN_TRACE(18, 0);
      // stmatrix, four 8 x 8 matrices per instruction (kO / 8 per thread instead of kO / 2 4-byte
      // stores): matrix mi = lane / 8 is column group jj = 2 i + mi / 2 of rows (mi % 2) * 8 + ...
      // of the warp's 16; lane % 8 gives the row, whose 16-byte chunk jj % 8 sits at chunk
      // (jj % 8) ^ (row % 8) = (2 i % 8) ^ sw, sw = (mi / 2) ^ (lane % 8).
      const int mi = lane / 8, rr = lane % 8;
      const uint32_t row_addr = smem_u32(sm.q[0]) + (wg * 64 + warp * 16 + (mi % 2) * 8 + rr) * 128;
      const uint32_t sw = static_cast<uint32_t>((mi / 2) ^ rr);
#pragma unroll
      for (int i = 0; i < kO / 8; ++i) {
        const int jj = 2 * i;  // this thread's groups jj and jj + 1 (accumulators 4 jj .. 4 jj + 7)
        const uint32_t at = row_addr + (jj / 8) * kHalfBytes + ((static_cast<uint32_t>(jj % 8) ^ sw) << 4);
        stmatrix_x4(at, pack2<T>(o[4 * jj] * ia, o[4 * jj + 1] * ia), pack2<T>(o[4 * jj + 2] * ib, o[4 * jj + 3] * ib),
                    pack2<T>(o[4 * jj + 4] * ia, o[4 * jj + 5] * ia), pack2<T>(o[4 * jj + 6] * ib, o[4 * jj + 7] * ib));
      }
      XATTN_TRACE(19, 0);
      wgmma::fence_proxy_async();  // visible to the TMA copy (the async proxy)
      __syncwarp();
      if (lane == 0) tma::mbar_arrive(smem_u32(&sm.o_full));
      XATTN_TRACE(20, 0);
    } else {
      T* og = static_cast<T*>(p.o) + b * p.o_stride_b + h * p.o_stride_h;
#pragma unroll
      for (int j = 0; j < kO / 4; ++j) {
        const int col = j * 8 + 2 * c;
        if (row_a < p.q_len)
          *reinterpret_cast<uint32_t*>(og + row_a * p.o_stride_l + col) = pack2<T>(o[4 * j] * ia, o[4 * j + 1] * ia);
        if (row_b < p.q_len)
          *reinterpret_cast<uint32_t*>(og + row_b * p.o_stride_l + col) = pack2<T>(o[4 * j + 2] * ib, o[4 * j + 3] * ib);
      }
    }
    if (p.lse && c == 0) {
      float* lse = p.lse + (static_cast<int64_t>(b) * p.q_heads + h) * p.q_len;
      if (row_a < p.q_len) lse[row_a] = el_a > 0.f ? (em_a + log2f(el_a)) / kLog2e : -INFINITY;
      if (row_b < p.q_len) lse[row_b] = el_b > 0.f ? (em_b + log2f(el_b)) / kLog2e : -INFINITY;
    }
    XATTN_TRACE(21, 0);
    carried = carry;
    n0 += count;
  }  // rows
#endif
}

// Q, K or V viewed as [B, H, L, D]: box 64 columns x 128 rows, exactly one swizzled half-tile.
bool make_kv_map(CUtensorMap* map, const void* base, DType dtype, int head_dim, int len, int heads, int batch,
                 int64_t stride_l, int64_t stride_h, int64_t stride_b) {
  const uint64_t dims[4] = {static_cast<uint64_t>(head_dim), static_cast<uint64_t>(len),
                            static_cast<uint64_t>(heads), static_cast<uint64_t>(batch)};
  const int64_t strides[3] = {stride_l, stride_h, stride_b};
  const uint32_t box[4] = {64, static_cast<uint32_t>(kKeys), 1, 1};
  return tma::encode_map(map, base, dtype, 4, dims, strides, box);
}

template <typename T, int D, Load kLoad>
cudaError_t launch_kernel(const CUtensorMap& mq, const CUtensorMap& mk, const CUtensorMap& mv, const AttentionParams& p,
                          cudaStream_t stream, const CUtensorMap* mo = nullptr) {
  const size_t smem = sizeof(SmemT<D>) + 1024;  // + alignment slack
  auto* kernel = sparse_attention_sm90_kernel<T, D, kLoad>;
  cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
  if (e != cudaSuccess) return e;
  const int qb = (p.q_len + kRows - 1) / kRows;
  dim3 grid(qb, p.q_heads, p.batch);
  if constexpr (kLoad == Load::kTmaProducer) {
    // Rows in a 1-D grid; persistent (one CTA per SM, rows taken in turn, each row's first block
    // scored during the previous row's last PV) where rows are short, else one row per CTA (the
    // same kernel: a CTA's next row is past the end). Session 6 measured the persistent kernel
    // (without the carried first block) slower on long sparse rows (video 35%: 607 vs 674 TF/s);
    // with it, H100 2026-11-27, persistent vs not, causal-8k 25% 484.5 vs 432.4 TF/s, causal-16k
    // 25% 532.9 vs 484.1, dense 582.3 vs 565.6 (kernels/NOTES.md, session 9).
    // XATTN_ATTENTION_PERSISTENT=0|1 overrides; XATTN_ATTENTION_CTAS=n caps the persistent grid
    // (tests: a few CTAs walk many rows each).
    int dev = 0, sms = 132;
    if (cudaGetDevice(&dev) == cudaSuccess) cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
    const int64_t rows = static_cast<int64_t>(qb) * p.q_heads * p.batch;
    const int kb = (p.k_len + kKeys - 1) / kKeys;
    bool persistent = kb <= 128;
    if (const char* env = std::getenv("XATTN_ATTENTION_PERSISTENT"); env && *env) persistent = std::atoi(env) != 0;
    int64_t ctas = persistent ? sms : rows;
    if (const char* env = std::getenv("XATTN_ATTENTION_CTAS"); env && std::atoi(env) > 0) ctas = std::atoi(env);
    grid = dim3(static_cast<unsigned>(std::min<int64_t>(rows, ctas)), 1, 1);
  }
  // Ping-pong (the consumer warpgroups take turns at the tensor cores) is on unless
  // XATTN_ATTENTION_PINGPONG=0 (main's measurements in NOTES.md, session 8).
  // XATTN_ATTENTION_MASK_ALL=1 sends every block through the masked softmax (A/B runs).
  auto env_int = [](const char* name, int fallback) {
    const char* env = std::getenv(name);
    return env && *env ? std::atoi(env) : fallback;
  };
  // O leaves through shared memory and a TMA store where the producer kernel has a map for it,
  // unless XATTN_ATTENTION_O_STAGE=0 (the consumers' own stores; A/B runs and tests).
  const bool o_stage = kLoad == Load::kTmaProducer && mo && env_int("XATTN_ATTENTION_O_STAGE", 1) != 0;
  // XATTN_ATTENTION_LAZY_RESCALE=0: the softmax rescales to the exact running maximum (A/B runs).
  // XATTN_ATTENTION_HALF_LAST=0: every block at full width (the half bits above; A/B runs, tests).
  const int flags = (env_int("XATTN_ATTENTION_PINGPONG", 1) != 0 ? kFlagPingPong : 0) |
                    (env_int("XATTN_ATTENTION_MASK_ALL", 0) != 0 ? kFlagMaskAll : 0) | (o_stage ? kFlagOStage : 0) |
                    (env_int("XATTN_ATTENTION_LAZY_RESCALE", 1) != 0 ? kFlagLazyRescale : 0) |
                    (env_int("XATTN_ATTENTION_HALF_LAST", 1) != 0 ? kFlagHalfLast : 0);
  kernel<<<grid, cta_threads<kLoad>(), smem, stream>>>(mq, mk, mv, o_stage ? *mo : mq, p, flags);
  return cudaGetLastError();
}

template <typename T, int D>
cudaError_t launch_sm90(const AttentionParams& p, cudaStream_t stream) {
  CUtensorMap mq{}, mk{}, mv{};
  const bool tma = p.impl != AttentionImpl::kWgmmaCpAsync &&
                   make_kv_map(&mk, p.k, p.dtype, D, p.k_len, p.kv_heads, p.batch, p.k_stride_l, p.k_stride_h,
                               p.k_stride_b) &&
                   make_kv_map(&mv, p.v, p.dtype, D, p.k_len, p.kv_heads, p.batch, p.v_stride_l, p.v_stride_h,
                               p.v_stride_b);
  if (!tma) return launch_kernel<T, D, Load::kCpAsync>(mq, mk, mv, p, stream);
  // The producer warpgroup also loads Q by TMA; a Q that TMA cannot describe takes the inline kernel.
  const bool tma_q = make_kv_map(&mq, p.q, p.dtype, D, p.q_len, p.q_heads, p.batch, p.q_stride_l, p.q_stride_h,
                                 p.q_stride_b);
  if (p.impl == AttentionImpl::kWgmmaInline || !tma_q) return launch_kernel<T, D, Load::kTmaInline>(mq, mk, mv, p, stream);
  CUtensorMap mo{};
  const bool tma_o = make_kv_map(&mo, p.o, p.dtype, D, p.q_len, p.q_heads, p.batch, p.o_stride_l, p.o_stride_h,
                                 p.o_stride_b);
  return launch_kernel<T, D, Load::kTmaProducer>(mq, mk, mv, p, stream, tma_o ? &mo : nullptr);
}

}  // namespace

cudaError_t block_sparse_attention_sm90(const AttentionParams& p, cudaStream_t stream) {
  const bool bf = p.dtype == DType::kBF16;
  if (p.head_dim == 128) return bf ? launch_sm90<__nv_bfloat16, 128>(p, stream) : launch_sm90<__half, 128>(p, stream);
  return bf ? launch_sm90<__nv_bfloat16, 64>(p, stream) : launch_sm90<__half, 64>(p, stream);
}

}  // namespace xattn::kernels
