// The ATen reference of XAttention: antidiagonal scoring, block selection, masks.
// Readable first: the CUDA kernels are checked against this file.
#include "core/attention/xattention.h"

#include <cmath>
#include <limits>

#include "core/attention/cuda_dispatch.h"
#include "core/attention/geometry.h"
#include "core/device.h"
#include "core/error.h"

namespace xattn::attention {

namespace {
constexpr double kInf = std::numeric_limits<double>::infinity();

// Bytes of fp32 logits one chunk of the scoring product may hold.
constexpr int64_t kChunkBytes = 256ll << 20;
}  // namespace

std::string XAttentionConfig::check() const {
  if (block_size % stride != 0)
    return str_cat("block_size ", block_size, " must be a multiple of stride ", stride);
  return {};
}

bool AttentionSpec::is_dense() const {
  if (mode == "dense") return true;
  if (xattention.selection != "threshold") return false;
  if (!xattention.head_thresholds.empty()) {
    for (double t : xattention.head_thresholds)
      if (t < 1.0) return false;
    return true;
  }
  return xattention.threshold >= 1.0;
}

// Kept over computable blocks, for BlockMask (sums [B, H]) and AttentionStats (sums [H]): one
// read-back of both totals.
static double kept_share(const at::Tensor& kept, const at::Tensor& computable) {
  const at::Tensor both = at::stack({kept.sum(), computable.sum()}).to(at::kCPU);
  const double c = static_cast<double>(both[1].item<int64_t>());
  return c > 0 ? static_cast<double>(both[0].item<int64_t>()) / c : 0.0;
}

// The same per head, from sums per head [H] (on their device).
static at::Tensor kept_share_per_head(const at::Tensor& kept, const at::Tensor& computable) {
  return kept.to(at::kDouble) / computable.to(at::kDouble).clamp_min(1.0);
}

double BlockMask::density() const { return kept_share(kept, computable); }

at::Tensor BlockMask::density_per_head() const { return kept_share_per_head(kept.sum(0), computable.sum(0)); }

// ---------------------------------------------------------------------------
// Fills indices, counts, computable and kept from mask (already restricted to allowed).
static void finalize(BlockMask& m, const at::Tensor& allowed) {
  const int64_t kb = m.mask.size(3);
  const auto dev = m.mask.device();
  at::Tensor cols = at::arange(kb, at::TensorOptions().dtype(at::kLong).device(dev));
  // Kept columns sort first, in ascending order; the rest become -1.
  at::Tensor key = at::where(m.mask, cols, cols + kb);
  at::Tensor sorted = std::get<0>(key.sort(-1));
  m.indices = at::where(sorted < kb, sorted, at::full_like(sorted, -1)).to(at::kInt);
  m.counts = m.mask.sum(-1).to(at::kInt);
  m.kept = m.mask.sum({2, 3}).to(at::kLong);
  m.computable = allowed.expand_as(m.mask).sum({2, 3}).to(at::kLong);
}

BlockMask BlockMask::from_mask(const at::Tensor& mask, int64_t block_size, int64_t q_len, int64_t k_len,
                               const AttentionOptions& opts) {
  XATTN_CHECK_IN("attention", mask.dim() == 4 && mask.scalar_type() == at::kBool,
                 "mask: expected bool [B, H, Qb, Kb], got ", mask.scalar_type(), " ", shape_str(mask));
  const Geometry g = Geometry::make(mask.size(0), q_len, k_len, block_size, opts);
  XATTN_CHECK_IN("attention", mask.size(2) == g.q_blocks && mask.size(3) == g.k_blocks, "mask: expected [",
                 mask.size(0), ", ", mask.size(1), ", ", g.q_blocks, ", ", g.k_blocks, "] for Lq ", q_len, ", Lk ",
                 k_len, ", block ", block_size, "; got ", shape_str(mask));
  BlockMask m;
  m.block_size = block_size;
  m.q_len = q_len;
  m.k_len = k_len;
  m.causal = opts.causal;
  const at::Tensor allowed = g.allowed_blocks(mask.device());  // [B, 1, Qb, Kb]
  m.mask = mask & allowed;
  finalize(m, allowed);
  return m;
}

at::Tensor Workspace::get(const std::string& slot, at::IntArrayRef shape, at::ScalarType dtype,
                          const at::Device& device) {
  int64_t numel = 1;
  for (int64_t d : shape) numel *= d;
  at::Tensor& buf = buffers_[slot];
  if (!buf.defined() || buf.numel() < numel || buf.scalar_type() != dtype || buf.device() != device) {
    buf = at::empty({std::max<int64_t>(numel, 1)}, at::TensorOptions().dtype(dtype).device(device));
    ++allocations_;
  }
  return buf.narrow(0, 0, numel).view(shape);
}

at::Tensor Workspace::thresholds(const std::vector<double>& taus, const at::Device& device) {
  if (!taus_.defined() || taus != taus_key_ || taus_.device() != device) {
    taus_ = at::tensor(std::vector<float>(taus.begin(), taus.end())).to(device);
    taus_key_ = taus;
    ++allocations_;
  }
  return taus_;
}

int64_t Workspace::bytes() const {
  int64_t total = taus_.defined() ? taus_.nbytes() : 0;
  for (const auto& [name, t] : buffers_) total += static_cast<int64_t>(t.nbytes());
  return total;
}

BlockMask BlockMask::full(int64_t batch, int64_t heads, int64_t block_size, int64_t q_len, int64_t k_len,
                          const AttentionOptions& opts) {
  const Geometry g = Geometry::make(batch, q_len, k_len, block_size, opts);
  const auto dev = opts.key_lengths.defined() ? opts.key_lengths.device() : at::Device(at::kCPU);
  return from_mask(at::ones({batch, heads, g.q_blocks, g.k_blocks}, at::TensorOptions().dtype(at::kBool).device(dev)),
                   block_size, q_len, k_len, opts);
}

// ---------------------------------------------------------------------------
static at::Tensor strided_block_scores(const at::Tensor& q, const at::Tensor& k, int64_t stride, int64_t block_size,
                                       const AttentionOptions& opts, bool antidiagonal) {
  const Shapes s = Shapes::check(q, k, at::Tensor(), opts);
  XATTN_CHECK_IN("xattention", stride >= 1 && block_size % stride == 0, "block_size ", block_size,
                 " must be a multiple of stride ", stride);
  const Geometry g = Geometry::make(s.batch, s.q_len, s.k_len, block_size, opts);
  const auto ct = compute_type(q);
  const int64_t S = stride;
  const int64_t nq = (s.q_len + S - 1) / S;  // query groups
  const int64_t nk = (s.k_len + S - 1) / S;  // key groups
  const int64_t gpb = block_size / S;        // groups per block
  const int64_t G = s.q_heads / s.kv_heads;
  const int64_t D = s.head_dim;
  const double scale = opts.scale.value_or(1.0 / std::sqrt(static_cast<double>(D)));

  // Reshape so one matrix product gives every antidiagonal sum (spec §1):
  //   Q_r[i] = concat_t q[iS + S-1-t],  K_r[j] = concat_t k[jS + t],  S_hat = Q_r K_r^T.
  // Zero padding to a multiple of S adds nothing to these sums.
  at::Tensor qp = at::constant_pad_nd(q, {0, 0, 0, 0, 0, nq * S - s.q_len});  // q: [B, nq*S, Hq, D]
  at::Tensor kp = at::constant_pad_nd(k, {0, 0, 0, 0, 0, nk * S - s.k_len});
  // qr: [B, Hkv, G, nq, S*D] (query head h = hkv*G + g); kr: [B, Hkv, nk, S*D]
  at::Tensor qv = qp.view({s.batch, nq, S, s.q_heads, D});
  if (antidiagonal) qv = qv.flip({2});
  // The product runs in fp32 on the CPU; on a GPU in the input dtype with fp32 accumulation
  // (tensor cores, as the CUDA kernel does); the softmax is fp32 either way.
  const auto mm_type = q.is_cuda() ? q.scalar_type() : ct;
  at::Tensor qr = qv.permute({0, 3, 1, 2, 4}).reshape({s.batch, s.kv_heads, G, nq, S * D}).to(mm_type);
  at::Tensor kr = kp.view({s.batch, nk, S, s.kv_heads, D}).permute({0, 3, 1, 2, 4})
                      .reshape({s.batch, s.kv_heads, nk, S * D}).to(mm_type);

  const auto opt = at::TensorOptions().dtype(ct).device(q.device());
  at::Tensor scores = at::zeros({s.batch, s.q_heads, g.q_blocks, g.k_blocks}, opt);
  at::Tensor key_group = at::arange(nk, opt.dtype(at::kLong)) * S;  // first key of each group
  // Rows per chunk: whole blocks, bounded memory.
  const int64_t per_block_bytes = s.q_heads * gpb * nk * static_cast<int64_t>(sizeof(float));
  const int64_t blocks_per_chunk = std::max<int64_t>(1, kChunkBytes / std::max<int64_t>(1, per_block_bytes));
  const int64_t kpad = g.k_blocks * gpb - nk;

  for (int64_t b = 0; b < s.batch; ++b) {
    const int64_t len = g.key_length(b);
    at::Tensor key_invalid = key_group >= len;  // [nk]: group holds no real key
    for (int64_t i0 = 0; i0 < nq; i0 += blocks_per_chunk * gpb) {
      const int64_t i1 = std::min(nq, i0 + blocks_per_chunk * gpb);
      const int64_t r = i1 - i0;
      // logits: [Hkv, G*r, nk] -> [Hq, r, nk]
      at::Tensor qc = qr[b].narrow(2, i0, r).reshape({s.kv_heads, G * r, S * D});
      at::Tensor logits = at::matmul(qc, kr[b].transpose(-1, -2)).to(ct).contiguous().view({s.q_heads, r, nk});
      logits.mul_(scale / static_cast<double>(S));  // the mean of the S antidiagonal logits
      at::Tensor invalid = key_invalid.view({1, nk}).expand({r, nk});
      if (s.causal) {
        // Keep key group j when its first key is not after the group's last query:
        //   j*S <= i*S + (Lk - Lq) + S - 1   (the reference's j <= i when Lk - Lq is a multiple of S).
        at::Tensor last_query = (at::arange(i0, i1, opt.dtype(at::kLong)) * S + g.offset + S - 1).view({r, 1});
        invalid = invalid | (key_group.view({1, nk}) > last_query);
      }
      mask_logits_(logits, invalid.logical_not().unsqueeze(0));
      at::Tensor p = at::softmax(logits, -1);
      p = at::where(at::isnan(p), at::zeros_like(p), p);  // rows with no valid key: no mass
      // Sum probabilities over each (block row, block column) tile.
      const int64_t rb = (r + gpb - 1) / gpb;
      p = at::constant_pad_nd(p, {0, kpad, 0, rb * gpb - r});
      at::Tensor tile = p.view({s.q_heads, rb, gpb, g.k_blocks, gpb}).sum({2, 4});  // [Hq, rb, Kb]
      scores[b].narrow(1, i0 / gpb, rb).copy_(tile);
    }
  }
  return scores;
}

at::Tensor antidiagonal_block_scores(const at::Tensor& q, const at::Tensor& k, int64_t stride, int64_t block_size,
                                     const AttentionOptions& opts) {
  std::string why;
  if (opts.backend != Backend::kReference && cuda::supports_estimate(q, k, stride, block_size, &why)) {
    Shapes::check(q, k, at::Tensor(), opts);
    return cuda::antidiagonal_scores(q, k, stride, block_size, opts);
  }
  XATTN_CHECK_IN("xattention", opts.backend != Backend::kCuda, "the CUDA kernels cannot run this call: ", why);
  return strided_block_scores(q, k, stride, block_size, opts, /*antidiagonal=*/true);
}

at::Tensor diagonal_block_scores(const at::Tensor& q, const at::Tensor& k, int64_t stride, int64_t block_size,
                                 const AttentionOptions& opts) {
  return strided_block_scores(q, k, stride, block_size, opts, /*antidiagonal=*/false);
}

// ---------------------------------------------------------------------------
namespace {
// Each row's blocks in selection order: forced first, then by estimated mass, blocks that
// cannot be computed last.
struct SortedRows {
  at::Tensor order, mass, forced, allowed, pos;  // sorted views, [B, H, Qb, Kb]
  at::Tensor allowed_blocks;                     // [B, 1, Qb, Kb] unsorted
};
SortedRows sort_rows(const at::Tensor& scores, const Geometry& g, bool sink, bool diagonal) {
  const auto dev = scores.device();
  const auto dopt = at::TensorOptions().dtype(at::kDouble).device(dev);
  SortedRows r;
  r.allowed_blocks = g.allowed_blocks(dev);
  at::Tensor forced = g.forced_blocks(dev, sink, diagonal) & r.allowed_blocks;
  at::Tensor mass = at::where(r.allowed_blocks, scores.to(at::kDouble), at::zeros({}, dopt));
  at::Tensor forced_e = forced.expand_as(mass);
  at::Tensor allowed_e = r.allowed_blocks.expand_as(mass);
  at::Tensor key = at::where(forced_e, at::full({}, kInf, dopt), at::where(allowed_e, mass, at::full({}, -1.0, dopt)));
  r.order = std::get<1>(key.sort(/*stable=*/true, /*dim=*/-1, /*descending=*/true));
  r.mass = mass.gather(-1, r.order);
  r.forced = forced_e.gather(-1, r.order);
  r.allowed = allowed_e.gather(-1, r.order);
  r.pos = at::arange(g.k_blocks, dopt.dtype(at::kLong)).view({1, 1, 1, g.k_blocks});
  return r;
}

BlockMask make_mask(const SortedRows& r, const at::Tensor& keep_sorted, int64_t block_size, int64_t q_len,
                    int64_t k_len, bool causal) {
  BlockMask m;
  m.block_size = block_size;
  m.q_len = q_len;
  m.k_len = k_len;
  m.causal = causal;
  const at::Tensor keep = keep_sorted & r.allowed;
  m.mask = at::zeros_like(keep).scatter(-1, r.order, keep);
  finalize(m, r.allowed_blocks);
  return m;
}
}  // namespace

BlockMask select_by_counts(const at::Tensor& scores, const at::Tensor& counts, int64_t block_size, int64_t q_len,
                           int64_t k_len, const AttentionOptions& opts, bool force_sink, bool force_diagonal) {
  XATTN_CHECK_IN("xattention", scores.dim() == 4, "scores: expected [B, H, Qb, Kb], got ", shape_str(scores));
  const Geometry g = Geometry::make(scores.size(0), q_len, k_len, block_size, opts);
  XATTN_CHECK_IN("xattention", counts.sizes() == scores.sizes().slice(0, 3), "counts: expected ",
                 shape_str(scores.narrow(3, 0, 1).squeeze(3)), ", got ", shape_str(counts));
  const SortedRows r = sort_rows(scores, g, force_sink, force_diagonal);
  const at::Tensor keep = r.forced | (r.pos < counts.to(at::kLong).to(scores.device()).unsqueeze(-1));
  return make_mask(r, keep, block_size, q_len, k_len, opts.causal);
}

BlockMask select_blocks(const at::Tensor& scores, const XAttentionConfig& cfg, int64_t q_len, int64_t k_len,
                        const AttentionOptions& opts) {
  const std::string bad = config::validate(cfg, "xattention");
  if (!bad.empty()) throw Error("xattention", bad);
  XATTN_CHECK_IN("xattention", scores.dim() == 4, "scores: expected [B, H, Qb, Kb], got ", shape_str(scores));
  const int64_t B = scores.size(0), H = scores.size(1);
  const Geometry g = Geometry::make(B, q_len, k_len, cfg.block_size, opts);
  XATTN_CHECK_IN("xattention", scores.size(2) == g.q_blocks && scores.size(3) == g.k_blocks, "scores: expected [", B,
                 ", ", H, ", ", g.q_blocks, ", ", g.k_blocks, "], got ", shape_str(scores));
  const auto dev = scores.device();
  const auto dopt = at::TensorOptions().dtype(at::kDouble).device(dev);
  const SortedRows r = sort_rows(scores, g, cfg.force_sink, cfg.force_diagonal);

  at::Tensor keep;
  if (cfg.selection == "threshold") {
    at::Tensor tau;
    if (!cfg.head_thresholds.empty()) {
      XATTN_CHECK_IN("xattention", static_cast<int64_t>(cfg.head_thresholds.size()) == H, "head_thresholds has ",
                     cfg.head_thresholds.size(), " entries but there are ", H, " query heads");
      tau = at::tensor(cfg.head_thresholds, at::kDouble).to(dev).view({1, H, 1, 1});
    } else {
      tau = at::full({1, H, 1, 1}, cfg.threshold, dopt);
    }
    at::Tensor required = tau * r.mass.sum(-1, /*keepdim=*/true);
    // Mass kept before each candidate (exclusive prefix sum): a block is kept while the
    // kept mass is still below the requirement, so the crossing block is kept too.
    at::Tensor before = at::constant_pad_nd(at::cumsum(r.mass, -1).narrow(-1, 0, g.k_blocks - 1), {1, 0});
    keep = r.forced | (before < required) | (tau >= 1.0);
    if (!opts.causal) keep = keep | (r.pos == 0);  // a valid row keeps at least its best block
  } else {
    at::Tensor limit;
    if (cfg.selection == "top_k") {
      limit = at::full({1, 1, 1, 1}, static_cast<int64_t>(cfg.top_k), dopt.dtype(at::kLong));
    } else {  // top_ratio of the row's computable blocks, at least one
      at::Tensor n = r.allowed_blocks.sum(-1, /*keepdim=*/true).to(at::kDouble);
      limit = at::ceil(n * cfg.top_ratio).clamp_min(1.0).to(at::kLong);
    }
    keep = r.forced | (r.pos < limit);
  }
  BlockMask m = make_mask(r, keep, cfg.block_size, q_len, k_len, opts.causal);
  if (cfg.keep_scores) m.scores = scores.to(at::kFloat);
  const at::Tensor a = at::where(r.allowed_blocks, scores.to(at::kDouble), at::zeros({}, dopt));
  m.kept_mass = (a * m.mask).sum({2, 3}) / a.sum({2, 3}).clamp_min(1e-300);
  return m;
}

BlockMask estimate(const at::Tensor& q, const at::Tensor& k, const XAttentionConfig& cfg,
                   const AttentionOptions& opts) {
  const std::string bad = config::validate(cfg, "xattention");
  if (!bad.empty()) throw Error("xattention", bad);
  std::string why;
  if (opts.backend != Backend::kReference && cuda::supports_estimate(q, k, cfg.stride, cfg.block_size, &why)) {
    Shapes::check(q, k, at::Tensor(), opts);  // shapes only: nothing read back from the GPU
    return cuda::estimate(q, k, cfg, opts);
  }
  XATTN_CHECK_IN("xattention", opts.backend != Backend::kCuda, "the CUDA kernels cannot run this call: ", why);
  const at::Tensor scores = antidiagonal_block_scores(q, k, cfg.stride, cfg.block_size, opts);
  return select_blocks(scores, cfg, q.size(1), k.size(1), opts);
}

// ---------------------------------------------------------------------------
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const AttentionSpec& spec,
                     const AttentionOptions& opts, AttentionStats* stats) {
  const std::string bad = config::validate(spec, "attention");
  if (!bad.empty()) throw Error("attention", bad);
  if (spec.is_dense()) {
    if (stats) *stats = AttentionStats{};
    return dense_attention(q, k, v, opts).out;
  }
  const BlockMask mask = estimate(q, k, spec.xattention, opts);
  at::Tensor out = block_sparse_attention(q, k, v, mask, opts).out;
  if (stats) {  // queued: mask.kept and mask.computable may live in a workspace that the next call reuses
    stats->dense = false;
    stats->kept = mask.kept.sum(0);
    stats->computable = mask.computable.sum(0);
  }
  return out;
}

double AttentionStats::density() const { return dense ? 1.0 : kept_share(kept, computable); }

at::Tensor AttentionStats::density_per_head() const {
  return dense ? at::Tensor() : kept_share_per_head(kept, computable);
}

}  // namespace xattn::attention
