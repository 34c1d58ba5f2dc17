// Exact attention references in fp32 math (fp64 for fp64 inputs): dense, and restricted
// to kept blocks. Also the shared input checks and block geometry.
#include <cmath>
#include <limits>

#include "core/attention/cuda_dispatch.h"
#include "core/attention/geometry.h"
#include "core/device.h"
#include "core/error.h"

namespace xattn::attention {

namespace {
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr int64_t kRowChunk = 2048;  // query rows per logits chunk

bool float_type(at::ScalarType t) {
  return t == at::kFloat || t == at::kHalf || t == at::kBFloat16 || t == at::kDouble;
}
}  // namespace

at::ScalarType compute_type(const at::Tensor& q) { return q.scalar_type() == at::kDouble ? at::kDouble : at::kFloat; }

Shapes Shapes::check(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const AttentionOptions& opts) {
  const char* w = "attention";
  XATTN_CHECK_IN(w, q.defined() && k.defined(), "q and k must be defined tensors");
  XATTN_CHECK_IN(w, q.dim() == 4, "q: expected [B, Lq, Hq, D], got ", shape_str(q));
  XATTN_CHECK_IN(w, k.dim() == 4, "k: expected [B, Lk, Hkv, D], got ", shape_str(k));
  XATTN_CHECK_IN(w, float_type(q.scalar_type()), "q: expected fp32, fp16, bf16 or fp64, got ", q.scalar_type());
  XATTN_CHECK_IN(w, k.scalar_type() == q.scalar_type(), "k: dtype ", k.scalar_type(), " differs from q's ",
                 q.scalar_type());
  XATTN_CHECK_IN(w, k.device() == q.device(), "k: on ", k.device(), " but q is on ", q.device());
  Shapes s;
  s.batch = q.size(0);
  s.q_len = q.size(1);
  s.q_heads = q.size(2);
  s.head_dim = q.size(3);
  s.k_len = k.size(1);
  s.kv_heads = k.size(2);
  s.causal = opts.causal;
  XATTN_CHECK_IN(w, k.size(0) == s.batch, "k: batch ", k.size(0), " differs from q's ", s.batch, " (q ", shape_str(q),
                 ", k ", shape_str(k), ")");
  XATTN_CHECK_IN(w, k.size(3) == s.head_dim, "k: head_dim ", k.size(3), " differs from q's ", s.head_dim, " (q ",
                 shape_str(q), ", k ", shape_str(k), ")");
  XATTN_CHECK_IN(w, s.batch > 0 && s.q_len > 0 && s.k_len > 0 && s.head_dim > 0,
                 "empty sequence: q ", shape_str(q), ", k ", shape_str(k));
  XATTN_CHECK_IN(w, s.kv_heads > 0 && s.q_heads % s.kv_heads == 0, "query heads (", s.q_heads,
                 ") must be a multiple of key/value heads (", s.kv_heads, ")");
  if (v.defined()) {
    XATTN_CHECK_IN(w, v.dim() == 4 && v.size(0) == s.batch && v.size(1) == s.k_len && v.size(2) == s.kv_heads,
                   "v: expected [", s.batch, ", ", s.k_len, ", ", s.kv_heads, ", Dv] like k, got ", shape_str(v));
    XATTN_CHECK_IN(w, v.scalar_type() == q.scalar_type(), "v: dtype ", v.scalar_type(), " differs from q's ",
                   q.scalar_type());
    XATTN_CHECK_IN(w, v.device() == q.device(), "v: on ", v.device(), " but q is on ", q.device());
    s.v_dim = v.size(3);
  }
  if (opts.causal)
    XATTN_CHECK_IN(w, s.k_len >= s.q_len, "causal attention needs Lk >= Lq (queries are the last Lq positions); got Lq ",
                   s.q_len, ", Lk ", s.k_len);
  if (opts.scale) XATTN_CHECK_IN(w, std::isfinite(*opts.scale) && *opts.scale > 0, "scale must be positive, got ", *opts.scale);
  return s;
}

Geometry Geometry::make(int64_t batch, int64_t q_len, int64_t k_len, int64_t block, const AttentionOptions& opts) {
  XATTN_CHECK_IN("attention", block > 0, "block size must be positive, got ", block);
  Geometry g;
  g.batch = batch;
  g.q_len = q_len;
  g.k_len = k_len;
  g.block = block;
  g.q_blocks = (q_len + block - 1) / block;
  g.k_blocks = (k_len + block - 1) / block;
  g.causal = opts.causal;
  g.offset = opts.causal ? k_len - q_len : 0;
  g.key_lengths.assign(static_cast<size_t>(batch), k_len);
  if (opts.key_lengths.defined()) {
    const at::Tensor& kl = opts.key_lengths;
    XATTN_CHECK_IN("attention", kl.dim() == 1 && kl.size(0) == batch && !at::isFloatingType(kl.scalar_type()) &&
                                    kl.scalar_type() != at::kBool,
                   "key_lengths: expected integer [", batch, "], got ", kl.scalar_type(), " ", shape_str(kl));
    at::Tensor c = kl.to(at::kCPU).to(at::kLong);
    for (int64_t b = 0; b < batch; ++b) {
      const int64_t len = c[b].item<int64_t>();
      XATTN_CHECK_IN("attention", len >= 0 && len <= k_len, "key_lengths[", b, "] = ", len, " is outside [0, ", k_len,
                     "]");
      g.key_lengths[static_cast<size_t>(b)] = len;
    }
  }
  return g;
}

at::Tensor Geometry::allowed_blocks(const at::Device& device) const {
  const auto lopt = at::TensorOptions().dtype(at::kLong).device(device);
  at::Tensor first_key = (at::arange(k_blocks, lopt) * block).view({1, 1, 1, k_blocks});
  at::Tensor lens = at::tensor(key_lengths, at::kLong).to(device).view({batch, 1, 1, 1});
  at::Tensor allowed = first_key < lens;  // [B, 1, 1, Kb]
  if (causal) {
    at::Tensor last_query = (at::arange(q_blocks, lopt) * block + block).clamp_max(q_len) - 1 + offset;
    allowed = allowed & (first_key <= last_query.view({1, 1, q_blocks, 1}));
  }
  return allowed.expand({batch, 1, q_blocks, k_blocks}).contiguous();
}

at::Tensor Geometry::forced_blocks(const at::Device& device, bool sink, bool diagonal) const {
  const auto lopt = at::TensorOptions().dtype(at::kLong).device(device);
  at::Tensor forced = at::zeros({batch, 1, q_blocks, k_blocks}, lopt.dtype(at::kBool));
  if (!causal) return forced;
  at::Tensor cols = at::arange(k_blocks, lopt).view({1, 1, 1, k_blocks});
  if (sink) forced = forced | (cols == 0);
  if (diagonal) {
    at::Tensor rows = at::arange(q_blocks, lopt);
    // Integer tensors divide to floating point in ATen: floor explicitly.
    at::Tensor first = at::div(rows * block + offset, block, "floor").view({1, 1, q_blocks, 1});
    at::Tensor last =
        at::div((rows * block + block).clamp_max(q_len) - 1 + offset, block, "floor").view({1, 1, q_blocks, 1});
    forced = forced | ((cols >= first) & (cols <= last));
  }
  return forced;
}

// ---------------------------------------------------------------------------
void mask_logits_(at::Tensor& logits, const at::Tensor& keep) {
  at::Tensor drop = keep.logical_not().expand_as(logits).contiguous();
  logits.masked_fill_(drop, -kInf);
}

// Softmax-weighted sum over allowed keys for a chunk of rows; rows with no allowed key
// give 0 and LSE -inf. `logits` is a fresh tensor this function may modify.
static void masked_attend(at::Tensor logits, const at::Tensor& allowed, const at::Tensor& v, at::Tensor out,
                          at::Tensor lse) {
  if (allowed.defined()) mask_logits_(logits, allowed);
  at::Tensor p = at::softmax(logits, -1);
  p.nan_to_num_(0.0);  // a row whose logits are all -inf
  out.copy_(at::matmul(p, v));
  if (lse.defined()) lse.copy_(at::logsumexp(logits, -1));
}

// The exact reference for dense (`bmask` undefined) and block-sparse attention (`bmask` bool
// [B, Hq, Qb, Kb] of `block`-token blocks): per (batch, KV head) the logits of a chunk of rows, the
// key-length, causal and block masks at token resolution, then masked_attend.
static AttentionOutput reference_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                           const Shapes& s, const AttentionOptions& opts, bool return_lse,
                                           const at::Tensor& bmask, int64_t block) {
  const Geometry g = Geometry::make(s.batch, s.q_len, s.k_len, block, opts);
  const auto ct = compute_type(q);
  const double scale = opts.scale.value_or(1.0 / std::sqrt(static_cast<double>(s.head_dim)));
  const int64_t G = s.q_heads / s.kv_heads;
  const auto lopt = at::TensorOptions().dtype(at::kLong).device(q.device());
  at::Tensor out = at::empty({s.batch, s.q_heads, s.q_len, s.v_dim}, q.options().dtype(ct));
  at::Tensor lse = return_lse ? at::empty({s.batch, s.q_heads, s.q_len}, q.options().dtype(ct)) : at::Tensor();
  at::Tensor keys = at::arange(s.k_len, lopt).view({1, s.k_len});
  // Row chunks hold whole blocks when there is a block mask.
  const int64_t rows_per_chunk = bmask.defined() ? std::max<int64_t>(1, kRowChunk / block) * block : kRowChunk;
  for (int64_t b = 0; b < s.batch; ++b) {
    for (int64_t hk = 0; hk < s.kv_heads; ++hk) {
      at::Tensor kh = k[b].select(1, hk).to(ct).contiguous();                              // [Lk, D]
      at::Tensor vh = v[b].select(1, hk).to(ct).contiguous();                              // [Lk, Dv]
      at::Tensor qg = q[b].narrow(1, hk * G, G).permute({1, 0, 2}).to(ct).contiguous();  // [G, Lq, D]
      for (int64_t r0 = 0; r0 < s.q_len; r0 += rows_per_chunk) {
        const int64_t r = std::min(rows_per_chunk, s.q_len - r0);
        at::Tensor logits = (at::matmul(qg.narrow(1, r0, r), kh.t()) * scale).contiguous();  // [G, r, Lk]
        at::Tensor allowed;
        if (g.key_length(b) < s.k_len) allowed = keys < g.key_length(b);
        if (s.causal) {
          at::Tensor c = keys <= (at::arange(r0, r0 + r, lopt) + g.offset).view({r, 1});
          allowed = allowed.defined() ? (allowed & c) : c;
        }
        if (bmask.defined()) {
          // Block mask of these rows at token resolution: [G, r, Lk].
          const int64_t i0 = r0 / block, nb = (r + block - 1) / block;
          at::Tensor m = bmask[b].narrow(0, hk * G, G).narrow(1, i0, nb);  // [G, nb, Kb]
          m = m.repeat_interleave(block, 1).narrow(1, 0, r).repeat_interleave(block, 2).narrow(2, 0, s.k_len);
          allowed = allowed.defined() ? (m & allowed) : m;
        }
        masked_attend(logits, allowed, vh, out[b].narrow(0, hk * G, G).narrow(1, r0, r),
                      return_lse ? lse[b].narrow(0, hk * G, G).narrow(1, r0, r) : at::Tensor());
      }
    }
  }
  AttentionOutput result;
  result.out = out.permute({0, 2, 1, 3}).to(q.scalar_type()).contiguous();
  if (return_lse) result.lse = lse;
  return result;
}

AttentionOutput dense_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                const AttentionOptions& opts, bool return_lse) {
  const Shapes s = Shapes::check(q, k, v, opts);
  XATTN_CHECK_IN("attention", v.defined(), "v must be a defined tensor");
  if (opts.backend != Backend::kReference && q.is_cuda()) {
    AttentionOutput gpu;
    std::string why;
    if (cuda::dense_attention(q, k, v, opts, return_lse, &gpu, &why)) return gpu;
    XATTN_CHECK_IN("attention", opts.backend != Backend::kCuda, "the CUDA path cannot run this call: ", why);
  }
  return reference_attention(q, k, v, s, opts, return_lse, at::Tensor(), 1);
}

AttentionOutput block_sparse_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                       const BlockMask& mask, const AttentionOptions& opts, bool return_lse) {
  const Shapes s = Shapes::check(q, k, v, opts);
  XATTN_CHECK_IN("attention", v.defined(), "v must be a defined tensor");
  XATTN_CHECK_IN("attention", mask.mask.defined() && mask.mask.dim() == 4, "mask: block mask is empty");
  const int64_t bs = mask.block_size;
  XATTN_CHECK_IN("attention",
                 mask.mask.size(0) == s.batch && mask.mask.size(1) == s.q_heads &&
                     mask.mask.size(2) == (s.q_len + bs - 1) / bs && mask.mask.size(3) == (s.k_len + bs - 1) / bs,
                 "mask: expected [", s.batch, ", ", s.q_heads, ", ", (s.q_len + bs - 1) / bs, ", ",
                 (s.k_len + bs - 1) / bs, "] for q ", shape_str(q), ", k ", shape_str(k), " and block ", bs, "; got ",
                 shape_str(mask.mask));
  XATTN_CHECK_IN("attention", mask.causal == opts.causal, "mask was estimated with causal=", mask.causal,
                 " but attention is called with causal=", opts.causal);
  std::string why;
  if (opts.backend != Backend::kReference && cuda::supports_attention(q, k, v, mask, &why))
    return cuda::block_sparse_attention(q, k, v, mask, opts, return_lse);
  XATTN_CHECK_IN("attention", opts.backend != Backend::kCuda, "the CUDA kernels cannot run this call: ", why);
  return reference_attention(q, k, v, s, opts, return_lse, mask.mask.to(q.device()), bs);
}

}  // namespace xattn::attention
