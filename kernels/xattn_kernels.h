// CUDA kernels of xattn: raw pointers, a params struct and a stream; they return
// cudaError_t and never see LibTorch. core/attention/cuda_dispatch.cpp binds them to tensors.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace xattn::kernels {

enum class DType { kBF16 = 0, kFP16 = 1 };
// Which scoring kernel: auto = wgmma on compute capability 9.x, mma.sync elsewhere.
enum class ScoreImpl { kAuto = 0, kMmaSync = 1, kWgmma = 2 };
// kWgmma: TMA loads from a producer warpgroup when the K/V layout allows, else cp.async;
// kWgmmaInline: TMA loads issued by a consumer thread (the previous generation, kept for
// comparison); kWgmmaCpAsync: cp.async loads always.
enum class AttentionImpl { kAuto = 0, kMmaSync = 1, kWgmma = 2, kWgmmaCpAsync = 3, kWgmmaInline = 4 };

// Antidiagonal block scores A[B, H, Qb, Kb] (fp32), straight from Q and K, in one pass.
// Layouts: q [B, Lq, Hq, D], k [B, Lk, Hkv, D] with any batch/token/head strides (in
// elements, multiples of 8) and contiguous head_dim (a multiple of 64). A must be zeroed by
// the caller (blocks that cannot be computed are not written). The workspace (caller-owned,
// antidiagonal_workspace_bytes) holds each row's block sums relative to its running max.
struct ScoreParams {
  const void* q = nullptr;
  const void* k = nullptr;
  float* scores = nullptr;
  void* workspace = nullptr;
  const int32_t* key_lengths = nullptr;  // optional [B]; nullptr = all Lk
  int64_t q_stride_b = 0, q_stride_l = 0, q_stride_h = 0;
  int64_t k_stride_b = 0, k_stride_l = 0, k_stride_h = 0;
  int batch = 0, q_len = 0, k_len = 0, q_heads = 0, kv_heads = 0, head_dim = 0;
  int stride = 8;       // S: 4, 8, 16 or 32 (at least 2 groups per block)
  int block_size = 128; // 64 or 128, a multiple of S
  bool causal = false;  // query i sits at absolute position i + (Lk - Lq)
  float scale = 0.f;    // softmax scale (1/sqrt(D) by default)
  DType dtype = DType::kBF16;
  ScoreImpl impl = ScoreImpl::kAuto;
};
cudaError_t antidiagonal_scores(const ScoreParams& p, cudaStream_t stream);
// Bytes of workspace needed: (Lq/S) x (Kb + ceil(Lk/(64 S)) + 3) floats per (batch, head).
size_t antidiagonal_workspace_bytes(int batch, int q_heads, int q_len, int k_len, int stride, int block_size);

// Block selection from scores: a warp (rows of up to 512 blocks) or a CTA per (batch, head,
// query block) row, then one CTA per (batch, head) for the statistics.
enum class Selection { kThreshold = 0, kTopK = 1, kTopRatio = 2 };
struct SelectParams {
  const float* scores = nullptr;        // [B, H, Qb, Kb]
  float threshold = 0.9f;               // tau for every head (threshold selection) ...
  const float* head_threshold = nullptr;// ... unless this [H] list of per-head tau is given
  const int32_t* key_lengths = nullptr; // optional [B]
  bool* mask = nullptr;                 // out [B, H, Qb, Kb]
  int32_t* indices = nullptr;           // out [B, H, Qb, Kb]: kept blocks ascending, then -1
  int32_t* counts = nullptr;            // out [B, H, Qb]
  int64_t* kept = nullptr;              // out [B, H]: kept blocks
  int64_t* computable = nullptr;        // out [B, H]: blocks the rows could compute
  double* kept_mass = nullptr;          // out [B, H]: kept share of the score mass
  float* row_mass = nullptr;            // out [B, H, Qb, 2]: kept and total score mass per row
  int batch = 0, heads = 0, q_len = 0, k_len = 0, block_size = 128;
  bool causal = false, force_sink = true, force_diagonal = true;
  Selection selection = Selection::kThreshold;
  int top_k = 16;
  double top_ratio = 0.25;  // double, as the reference: ceil(0.3f * 390) is 118, ceil(0.3 * 390) 117
};
cudaError_t select_blocks(const SelectParams& p, cudaStream_t stream);
// antidiagonal_scores then select_blocks (sel.scores must be sp.scores; the other shared fields
// must agree): the same outputs, but on Hopper a split scoring launch finishes the scores and
// selects each row in one kernel (XATTN_SCORING_FUSED=0 keeps them apart, for comparison);
// *fused (optional) says whether it did.
cudaError_t estimate_blocks(const ScoreParams& sp, const SelectParams& sel, cudaStream_t stream,
                            bool* fused = nullptr);
// Largest Kb the selection kernel handles.
constexpr int kMaxSelectBlocks = 4096;

// Block-sparse flash attention, forward. q/o [B, Lq, Hq, D], k/v [B, Lk, Hkv, D] (any strides in
// elements, multiples of 8, contiguous head_dim of 64 or 128); indices/counts as SelectParams
// writes them (block 128). o is written for every row (zeros for rows with no kept block); lse
// (optional, fp32 [B, Hq, Lq], natural log) is -inf for those rows.
struct AttentionParams {
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  void* o = nullptr;
  float* lse = nullptr;
  const int32_t* indices = nullptr;  // [B, Hq, Qb, Kb]
  const int32_t* counts = nullptr;   // [B, Hq, Qb]
  const int32_t* key_lengths = nullptr;
  int64_t q_stride_b = 0, q_stride_l = 0, q_stride_h = 0;
  int64_t k_stride_b = 0, k_stride_l = 0, k_stride_h = 0;
  int64_t v_stride_b = 0, v_stride_l = 0, v_stride_h = 0;
  int64_t o_stride_b = 0, o_stride_l = 0, o_stride_h = 0;
  int batch = 0, q_len = 0, k_len = 0, q_heads = 0, kv_heads = 0, head_dim = 128, block_size = 128;
  bool causal = false;
  float scale = 0.f;
  DType dtype = DType::kBF16;
  AttentionImpl impl = AttentionImpl::kAuto;  // kAuto: wgmma on compute capability 9.x
};
cudaError_t block_sparse_attention(const AttentionParams& p, cudaStream_t stream);

// out = RMSNorm(x) * weight over the last dimension (64 or 128), then, if cos is given, rotary
// embedding of pairs (2i, 2i + 1): x and out are contiguous [rows, head_dim] = [B, L, H, D];
// cos/sin fp32 [seq_len, head_dim], row r at position (r / heads) % seq_len.
struct RmsNormRopeParams {
  const void* x = nullptr;
  void* out = nullptr;
  const void* weight = nullptr;  // [head_dim], dtype of x
  const float* cos = nullptr;
  const float* sin = nullptr;
  int64_t rows = 0;
  int head_dim = 128, heads = 1, seq_len = 1;
  float eps = 1e-6f;
  DType dtype = DType::kBF16;
};
cudaError_t rms_norm_rope(const RmsNormRopeParams& p, cudaStream_t stream);

}  // namespace xattn::kernels
