// Tensors -> kernels/xattn_kernels.h. Everything stays on the device: no host copies or
// synchronisation (key lengths and per-head thresholds are read by the kernels).
#include "core/attention/cuda_dispatch.h"

#include <cmath>
#include <cstdlib>
#include <vector>

#include <ATen/cuda/CUDAContext.h>

#include "core/device.h"
#include "core/error.h"
#include "kernels/xattn_kernels.h"

namespace xattn::attention::cuda {

namespace {
void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw Error("cuda", std::string(what) + " failed: " + cudaGetErrorString(e));
}
// The kernels gather 16-byte vectors: head_dim contiguous, other strides multiples of 8
// elements, base 16-byte aligned. Anything else is copied once.
at::Tensor vector_friendly(const at::Tensor& t) {
  const bool ok = t.stride(3) == 1 && t.stride(0) % 8 == 0 && t.stride(1) % 8 == 0 && t.stride(2) % 8 == 0 &&
                  reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0;
  return ok ? t : t.contiguous();
}
}  // namespace

bool supports_estimate(const at::Tensor& q, const at::Tensor& k, int64_t stride, int64_t block_size,
                       std::string* why) {
  auto no = [why](const std::string& w) {
    if (why) *why = w;
    return false;
  };
  if (!q.is_cuda() || !k.is_cuda()) return no("tensors are not on a CUDA device");
  if (q.scalar_type() != at::kBFloat16 && q.scalar_type() != at::kHalf) return no("dtype must be bf16 or fp16");
  if (q.dim() != 4 || q.size(3) % 64 != 0) return no("head_dim must be a multiple of 64");
  if (stride < 2 || block_size % stride != 0 || block_size / stride < 2 || 64 % (block_size / stride) != 0)
    return no("stride must be 4, 8, 16 or 32 (block 128) or 4, 8, 16, 32 (block 64) with >= 2 groups per block");
  if ((k.size(1) + block_size - 1) / block_size > kernels::kMaxSelectBlocks) return no("too many key blocks");
  return true;
}

namespace {
// A tensor from the caller's workspace when there is one, else a fresh one.
at::Tensor buffer(const AttentionOptions& opts, const std::string& slot, at::IntArrayRef shape, at::ScalarType dtype,
                  const at::Device& device) {
  if (opts.workspace) return opts.workspace->get(slot, shape, dtype, device);
  return at::empty(shape, at::TensorOptions().dtype(dtype).device(device));
}
// Key lengths as int32 on the device (a device-side copy into the workspace when there is one).
at::Tensor key_lengths_int(const AttentionOptions& opts, const at::Device& device) {
  if (!opts.key_lengths.defined()) return {};
  if (!opts.workspace) return opts.key_lengths.to(device, at::kInt).contiguous();
  at::Tensor l = opts.workspace->get("key_lengths", {opts.key_lengths.numel()}, at::kInt, device);
  l.copy_(opts.key_lengths.reshape({-1}), /*non_blocking=*/true);
  return l;
}
}  // namespace

namespace {
// The scoring call's parameters and buffers (scores, scratch, key lengths); `keep` holds the
// tensors the pointers refer to.
kernels::ScoreParams score_params(const at::Tensor& q, const at::Tensor& k, int64_t stride, int64_t block_size,
                                  const AttentionOptions& opts, std::vector<at::Tensor>* keep) {
  const int64_t B = q.size(0), Lq = q.size(1), H = q.size(2), D = q.size(3), Lk = k.size(1);
  const int64_t qb = (Lq + block_size - 1) / block_size, kb = (Lk + block_size - 1) / block_size;
  at::Tensor scores = buffer(opts, "scores", {B, H, qb, kb}, at::kFloat, q.device());  // every block written
  const size_t ws_bytes = kernels::antidiagonal_workspace_bytes(static_cast<int>(B), static_cast<int>(H),
                                                                static_cast<int>(Lq), static_cast<int>(Lk),
                                                                static_cast<int>(stride), static_cast<int>(block_size));
  at::Tensor ws = buffer(opts, "score_scratch", {static_cast<int64_t>(ws_bytes / sizeof(float))}, at::kFloat, q.device());
  const at::Tensor lens = key_lengths_int(opts, q.device());
  kernels::ScoreParams p;
  p.q = q.data_ptr();
  p.k = k.data_ptr();
  p.scores = scores.data_ptr<float>();
  p.workspace = ws.data_ptr<float>();
  p.key_lengths = lens.defined() ? lens.data_ptr<int32_t>() : nullptr;
  p.q_stride_b = q.stride(0), p.q_stride_l = q.stride(1), p.q_stride_h = q.stride(2);
  p.k_stride_b = k.stride(0), p.k_stride_l = k.stride(1), p.k_stride_h = k.stride(2);
  p.batch = static_cast<int>(B), p.q_len = static_cast<int>(Lq), p.k_len = static_cast<int>(Lk);
  p.q_heads = static_cast<int>(H), p.kv_heads = static_cast<int>(k.size(2)), p.head_dim = static_cast<int>(D);
  p.stride = static_cast<int>(stride);
  p.block_size = static_cast<int>(block_size);
  p.causal = opts.causal;
  p.scale = static_cast<float>(opts.scale.value_or(1.0 / std::sqrt(static_cast<double>(D))));
  p.dtype = q.scalar_type() == at::kBFloat16 ? kernels::DType::kBF16 : kernels::DType::kFP16;
  *keep = {scores, ws, lens};
  return p;
}

// The selection's parameters and output buffers for `scores` ([B, H, Qb, Kb]); the mask's
// tensors go to *m, the others to `keep`. `lens`: the key lengths as key_lengths_int gives them
// (the estimate passes the scoring's copy, so they are converted once per call).
kernels::SelectParams select_params(const at::Tensor& scores, const XAttentionConfig& cfg, int64_t q_len,
                                    int64_t k_len, const AttentionOptions& opts, const at::Tensor& lens, BlockMask* m,
                                    std::vector<at::Tensor>* keep) {
  const int64_t B = scores.size(0), H = scores.size(1), qb = scores.size(2), kb = scores.size(3);
  const auto dev = scores.device();
  m->block_size = cfg.block_size;
  m->q_len = q_len;
  m->k_len = k_len;
  m->causal = opts.causal;
  m->mask = buffer(opts, "mask", {B, H, qb, kb}, at::kBool, dev);
  m->indices = buffer(opts, "indices", {B, H, qb, kb}, at::kInt, dev);
  m->counts = buffer(opts, "counts", {B, H, qb}, at::kInt, dev);
  m->kept = buffer(opts, "kept", {B, H}, at::kLong, dev);
  m->computable = buffer(opts, "computable", {B, H}, at::kLong, dev);
  m->kept_mass = buffer(opts, "kept_mass", {B, H}, at::kDouble, dev);
  const at::Tensor row_mass = buffer(opts, "row_mass", {B, H, qb, 2}, at::kFloat, dev);
  at::Tensor taus;
  kernels::SelectParams p;
  p.scores = scores.data_ptr<float>();
  p.threshold = static_cast<float>(cfg.threshold);
  if (!cfg.head_thresholds.empty()) {
    XATTN_CHECK_IN("xattention", static_cast<int64_t>(cfg.head_thresholds.size()) == H, "head_thresholds has ",
                   cfg.head_thresholds.size(), " entries but there are ", H, " query heads");
    // Per-head thresholds (a few floats): uploaded on every call without a workspace, once per
    // distinct list with one.
    taus = opts.workspace ? opts.workspace->thresholds(cfg.head_thresholds, dev)
                          : at::tensor(std::vector<float>(cfg.head_thresholds.begin(), cfg.head_thresholds.end())).to(dev);
    p.head_threshold = taus.data_ptr<float>();
  }
  p.key_lengths = lens.defined() ? lens.data_ptr<int32_t>() : nullptr;
  p.mask = m->mask.data_ptr<bool>();
  p.indices = m->indices.data_ptr<int32_t>();
  p.counts = m->counts.data_ptr<int32_t>();
  p.kept = m->kept.data_ptr<int64_t>();
  p.computable = m->computable.data_ptr<int64_t>();
  p.kept_mass = m->kept_mass.data_ptr<double>();
  p.row_mass = row_mass.data_ptr<float>();
  p.batch = static_cast<int>(B), p.heads = static_cast<int>(H);
  p.q_len = static_cast<int>(q_len), p.k_len = static_cast<int>(k_len), p.block_size = cfg.block_size;
  p.causal = opts.causal, p.force_sink = cfg.force_sink, p.force_diagonal = cfg.force_diagonal;
  p.selection = cfg.selection == "threshold" ? kernels::Selection::kThreshold
                : cfg.selection == "top_k"   ? kernels::Selection::kTopK
                                             : kernels::Selection::kTopRatio;
  p.top_k = cfg.top_k;
  p.top_ratio = cfg.top_ratio;
  keep->insert(keep->end(), {row_mass, taus});
  return p;
}
}  // namespace

at::Tensor antidiagonal_scores(const at::Tensor& q_in, const at::Tensor& k_in, int64_t stride, int64_t block_size,
                               const AttentionOptions& opts) {
  const at::Tensor q = vector_friendly(q_in), k = vector_friendly(k_in);
  std::vector<at::Tensor> keep;
  const kernels::ScoreParams p = score_params(q, k, stride, block_size, opts, &keep);
  check(kernels::antidiagonal_scores(p, at::cuda::getCurrentCUDAStream(q.device().index())), "antidiagonal_scores");
  return keep[0];
}

BlockMask select(const at::Tensor& scores, const XAttentionConfig& cfg, int64_t q_len, int64_t k_len,
                 const AttentionOptions& opts) {
  BlockMask m;
  std::vector<at::Tensor> keep;
  const at::Tensor lens = key_lengths_int(opts, scores.device());
  const kernels::SelectParams p = select_params(scores, cfg, q_len, k_len, opts, lens, &m, &keep);
  check(kernels::select_blocks(p, at::cuda::getCurrentCUDAStream(scores.device().index())), "select_blocks");
  if (cfg.keep_scores) m.scores = scores;
  return m;
}

BlockMask estimate(const at::Tensor& q_in, const at::Tensor& k_in, const XAttentionConfig& cfg,
                   const AttentionOptions& opts, bool* fused) {
  const at::Tensor q = vector_friendly(q_in), k = vector_friendly(k_in);
  std::vector<at::Tensor> keep;
  const kernels::ScoreParams sp = score_params(q, k, cfg.stride, cfg.block_size, opts, &keep);
  const at::Tensor scores = keep[0], lens = keep[2];  // one device copy of the key lengths for both
  BlockMask m;
  const kernels::SelectParams sel = select_params(scores, cfg, q.size(1), k.size(1), opts, lens, &m, &keep);
  check(kernels::estimate_blocks(sp, sel, at::cuda::getCurrentCUDAStream(q.device().index()), fused),
        "estimate_blocks");
  if (cfg.keep_scores) m.scores = scores;
  return m;
}

bool supports_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const BlockMask& mask,
                        std::string* why) {
  auto no = [why](const std::string& w) {
    if (why) *why = w;
    return false;
  };
  if (!q.is_cuda() || !k.is_cuda() || !v.is_cuda()) return no("tensors are not on a CUDA device");
  if (q.scalar_type() != at::kBFloat16 && q.scalar_type() != at::kHalf) return no("dtype must be bf16 or fp16");
  if (q.dim() != 4 || (q.size(3) != 64 && q.size(3) != 128) || v.size(3) != q.size(3))
    return no("head_dim must be 64 or 128 (and equal for q and v)");
  if (mask.block_size != 128) return no("the attention kernel takes 128-token blocks");
  if (!mask.indices.defined() || !mask.counts.defined()) return no("the mask has no index lists");
  return true;
}

// XATTN_ATTENTION_KERNEL=mma_sync|wgmma|wgmma_inline|wgmma_cp_async forces a kernel generation (tests
// and benchmarks compare them); unset or "auto" picks wgmma on Hopper.
kernels::AttentionImpl attention_impl_from_env() {
  const char* env = std::getenv("XATTN_ATTENTION_KERNEL");
  if (!env || !*env || std::string(env) == "auto") return kernels::AttentionImpl::kAuto;
  if (std::string(env) == "mma_sync") return kernels::AttentionImpl::kMmaSync;
  if (std::string(env) == "wgmma") return kernels::AttentionImpl::kWgmma;
  if (std::string(env) == "wgmma_cp_async") return kernels::AttentionImpl::kWgmmaCpAsync;
  if (std::string(env) == "wgmma_inline") return kernels::AttentionImpl::kWgmmaInline;
  throw Error("attention",
              str_cat("XATTN_ATTENTION_KERNEL must be auto, mma_sync, wgmma, wgmma_inline or wgmma_cp_async, got '", env,
                      "'"));
}

AttentionOutput block_sparse_attention(const at::Tensor& q_in, const at::Tensor& k_in, const at::Tensor& v_in,
                                       const BlockMask& mask, const AttentionOptions& opts, bool return_lse) {
  const at::Tensor q = vector_friendly(q_in), k = vector_friendly(k_in), v = vector_friendly(v_in);
  const int64_t B = q.size(0), Lq = q.size(1), H = q.size(2), D = q.size(3), Lk = k.size(1);
  AttentionOutput out;
  out.out = at::empty({B, Lq, H, D}, q.options());
  if (return_lse) out.lse = at::empty({B, H, Lq}, q.options().dtype(at::kFloat));
  const at::Tensor idx = mask.indices.to(q.device(), at::kInt).contiguous();
  const at::Tensor cnt = mask.counts.to(q.device(), at::kInt).contiguous();
  at::Tensor lens;
  if (opts.key_lengths.defined()) lens = opts.key_lengths.to(q.device(), at::kInt).contiguous();
  kernels::AttentionParams p;
  p.q = q.data_ptr(), p.k = k.data_ptr(), p.v = v.data_ptr(), p.o = out.out.data_ptr();
  p.lse = return_lse ? out.lse.data_ptr<float>() : nullptr;
  p.indices = idx.data_ptr<int32_t>(), p.counts = cnt.data_ptr<int32_t>();
  p.key_lengths = lens.defined() ? lens.data_ptr<int32_t>() : nullptr;
  p.q_stride_b = q.stride(0), p.q_stride_l = q.stride(1), p.q_stride_h = q.stride(2);
  p.k_stride_b = k.stride(0), p.k_stride_l = k.stride(1), p.k_stride_h = k.stride(2);
  p.v_stride_b = v.stride(0), p.v_stride_l = v.stride(1), p.v_stride_h = v.stride(2);
  p.o_stride_b = out.out.stride(0), p.o_stride_l = out.out.stride(1), p.o_stride_h = out.out.stride(2);
  p.batch = static_cast<int>(B), p.q_len = static_cast<int>(Lq), p.k_len = static_cast<int>(Lk);
  p.q_heads = static_cast<int>(H), p.kv_heads = static_cast<int>(k.size(2)), p.head_dim = static_cast<int>(D);
  p.block_size = static_cast<int>(mask.block_size);
  p.causal = opts.causal;
  p.scale = static_cast<float>(opts.scale.value_or(1.0 / std::sqrt(static_cast<double>(D))));
  p.dtype = q.scalar_type() == at::kBFloat16 ? kernels::DType::kBF16 : kernels::DType::kFP16;
  p.impl = attention_impl_from_env();
  check(kernels::block_sparse_attention(p, at::cuda::getCurrentCUDAStream(q.device().index())),
        "block_sparse_attention");
  return out;
}

bool dense_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const AttentionOptions& opts,
                     bool return_lse, AttentionOutput* out, std::string* why) {
  if (!q.is_cuda()) {
    if (why) *why = "tensors are not on a CUDA device";
    return false;
  }
  const int64_t Lq = q.size(1), Lk = k.size(1);
  // SDPA's causal mask is top-left aligned; ours is bottom-right. They agree when Lq == Lk, and a
  // single query row (a decode step) sees every key, so it needs no mask at all.
  const bool causal = opts.causal && Lq > 1;
  // GQA through SDPA's enable_gqa for short queries (prompts, decode steps), where building the
  // full block list for our kernel costs more than the attention; long GQA sequences use our
  // kernel (measured at or above cuDNN on expanded K/V there, kernels/NOTES.md).
  const bool gqa = q.size(2) != k.size(2);
  const bool sdpa = (!gqa || (q.size(2) % k.size(2) == 0 && Lq <= 4096)) && !opts.key_lengths.defined() &&
                    !return_lse && (!causal || Lq == Lk) && q.scalar_type() == k.scalar_type() &&
                    k.scalar_type() == v.scalar_type() && q.scalar_type() != at::kDouble;
  if (sdpa) {
    // [B, L, H, D] -> [B, H, L, D] views; SDPA picks cuDNN / FlashAttention / efficient itself.
    at::Tensor o = at::scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), {},
                                                    0.0, causal, opts.scale, gqa);
    out->out = o.transpose(1, 2).contiguous();  // [B, Lq, H, D]
    return true;
  }
  const BlockMask all = BlockMask::full(q.size(0), q.size(2), 128, Lq, Lk, opts);
  if (!supports_attention(q, k, v, all, why)) return false;
  *out = cuda::block_sparse_attention(q, k, v, all, opts, return_lse);
  return true;
}

}  // namespace xattn::attention::cuda
