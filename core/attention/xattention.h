// XAttention: block-sparse attention whose blocks are chosen by antidiagonal scores.
//
// Usage (tensors are [batch, tokens, heads, head_dim]; K/V may have fewer heads — GQA):
//
//   #include "core/attention/xattention.h"
//   using namespace xattn::attention;
//
//   at::Tensor q = at::randn({1, 1000, 8, 64}), k = at::randn({1, 1000, 2, 64}), v = at::randn({1, 1000, 2, 64});
//   XAttentionConfig cfg;            // stride 8, block 128, threshold 0.9
//   cfg.block_size = 64;
//   AttentionOptions opts;
//   opts.causal = true;              // queries are the last Lq of the Lk positions
//
//   BlockMask mask = estimate(q, k, cfg, opts);          // which blocks to compute
//   AttentionOutput out = block_sparse_attention(q, k, v, mask, opts);
//   double kept = mask.density();                        // fraction of computable blocks kept
//
//   AttentionSpec spec;              // or both steps in one call (dense when threshold >= 1)
//   spec.xattention = cfg;
//   at::Tensor o = attention(q, k, v, spec, opts);
//
// Definitions follow ../shared/reference/xattention.md. Beyond the authors' code: batch > 1,
// GQA/MQA without copying K/V, any lengths (padding never adds probability mass), per-batch
// valid key lengths, causal with any Lk - Lq offset, strides 4..64, blocks 64/128, per-head
// thresholds, threshold / top-k / top-ratio selection.
//
// This file is the exact ATen reference. It runs wherever ATen runs (CPU, or CUDA tensors
// through ATen ops); the CUDA kernels in kernels/ must match it.
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/config/config.h"

namespace xattn::attention {

// How blocks are chosen (YAML: attention.xattention.*).
struct XAttentionConfig {
  int stride = 8;                        // S: tokens per antidiagonal group
  int block_size = 128;                  // B: query/key block edge; multiple of stride
  double threshold = 0.9;                // tau: keep blocks until this share of the row's estimated mass
  std::vector<double> head_thresholds;   // optional per-head tau (one per query head); overrides threshold
  std::string selection = "threshold";  // threshold | top_k | top_ratio
  int top_k = 16;                        // blocks per row for top_k (forced blocks count)
  double top_ratio = 0.25;               // share of computable blocks per row for top_ratio
  bool force_sink = true;                // causal: always keep key block 0
  bool force_diagonal = true;            // causal: always keep the key blocks crossing the diagonal
  bool keep_scores = false;              // return the block scores A in BlockMask::scores

  template <class V>
  void fields(V& v);
  std::string check() const;  // "" when valid
};

// One attention call's policy (YAML: attention.*).
struct AttentionSpec {
  std::string mode = "xattention";  // dense | xattention
  XAttentionConfig xattention;

  template <class V>
  void fields(V& v);
  // Dense when mode is dense or every threshold is >= 1 (threshold selection).
  bool is_dense() const;
};

// Which implementation runs: auto picks the CUDA kernels for CUDA tensors they support
// (bf16/fp16, head_dim a multiple of 64, stride 4-32) and the ATen reference otherwise.
enum class Backend { kAuto, kReference, kCuda };

// Per-call facts that come from the model, not from a config file.
// Device memory that the CUDA estimate reuses across calls: block scores, the scoring kernel's
// scratch, the mask, index lists and counts, key lengths and per-head thresholds. With a
// workspace in AttentionOptions, repeated calls (every layer, every step) allocate no device
// memory for these once the largest shape has been seen, and copy nothing from the host (a list
// of per-head thresholds is uploaded once, when it first appears). The BlockMask that estimate()
// returns then views the workspace: it stays valid until the next estimate() with the same
// workspace. One workspace per stream; not thread-safe.
class Workspace {
 public:
  // A tensor of `shape` and `dtype` on `device` backed by the buffer named `slot`, which grows
  // (reallocates) only when it is too small.
  at::Tensor get(const std::string& slot, at::IntArrayRef shape, at::ScalarType dtype, const at::Device& device);
  // Per-head thresholds as a float tensor on `device`, uploaded only when the list changes.
  at::Tensor thresholds(const std::vector<double>& taus, const at::Device& device);
  int64_t allocations() const { return allocations_; }  // device allocations so far (tests)
  int64_t bytes() const;

 private:
  std::map<std::string, at::Tensor> buffers_;
  std::vector<double> taus_key_;
  at::Tensor taus_;
  int64_t allocations_ = 0;
};

struct AttentionOptions {
  bool causal = false;            // causal: query i sits at absolute position i + (Lk - Lq)
  std::optional<double> scale;    // softmax scale; default 1/sqrt(head_dim)
  at::Tensor key_lengths;         // optional int [B]: keys at or beyond key_lengths[b] are padding
  Backend backend = Backend::kAuto;
  Workspace* workspace = nullptr; // optional reusable memory for the CUDA estimate (see Workspace)
};

// The selected blocks. Row = (batch, query head, query block).
struct BlockMask {
  at::Tensor mask;       // bool [B, H, Qb, Kb]
  at::Tensor indices;    // int32 [B, H, Qb, Kb]: kept key blocks of each row in ascending order, -1 after counts
  at::Tensor counts;     // int32 [B, H, Qb]
  at::Tensor scores;     // float [B, H, Qb, Kb] estimated block mass A (only with keep_scores)
  at::Tensor computable; // int64 [B, H]: blocks that could be computed (causal triangle, valid keys)
  at::Tensor kept;       // int64 [B, H]: blocks kept
  at::Tensor kept_mass;  // float64 [B, H]: share of the estimated mass in kept blocks (estimate/select only)
  int64_t block_size = 128;
  int64_t q_len = 0;
  int64_t k_len = 0;
  bool causal = false;

  int64_t batch() const { return mask.size(0); }
  int64_t heads() const { return mask.size(1); }
  int64_t q_blocks() const { return mask.size(2); }
  int64_t k_blocks() const { return mask.size(3); }
  double density() const;               // kept / computable over everything
  at::Tensor density_per_head() const;  // float64 [H], over batches and rows

  // Builders for tests, benchmarks and users with their own masks. `mask` is bool
  // [B, H, Qb, Kb]; blocks that cannot be computed (above the causal diagonal, beyond
  // the valid keys) are cleared.
  static BlockMask from_mask(const at::Tensor& mask, int64_t block_size, int64_t q_len, int64_t k_len,
                             const AttentionOptions& opts);
  // Every computable block.
  static BlockMask full(int64_t batch, int64_t heads, int64_t block_size, int64_t q_len, int64_t k_len,
                        const AttentionOptions& opts);
};

struct AttentionOutput {
  at::Tensor out;  // [B, Lq, Hq, D], the dtype of q
  at::Tensor lse;  // float [B, Hq, Lq] natural-log sum of exp of scaled logits; -inf for empty rows
};

// Antidiagonal scoring + block selection.
BlockMask estimate(const at::Tensor& q, const at::Tensor& k, const XAttentionConfig& cfg,
                   const AttentionOptions& opts = {});

// Only the antidiagonal block scores A [B, H, Qb, Kb] (float), before selection.
at::Tensor antidiagonal_block_scores(const at::Tensor& q, const at::Tensor& k, int64_t stride, int64_t block_size,
                                     const AttentionOptions& opts = {});

// The same sums along the main diagonal of each S x S tile instead of the antidiagonal
// (sum_t <q_{iS+t}, k_{jS+t}>); only for comparing estimators.
at::Tensor diagonal_block_scores(const at::Tensor& q, const at::Tensor& k, int64_t stride, int64_t block_size,
                                 const AttentionOptions& opts = {});

// Keeps, per row, the forced blocks and then the highest-scoring blocks up to counts
// [B, H, Qb] blocks in all; used to compare estimators at equal density.
BlockMask select_by_counts(const at::Tensor& scores, const at::Tensor& counts, int64_t block_size, int64_t q_len,
                           int64_t k_len, const AttentionOptions& opts, bool force_sink = true,
                           bool force_diagonal = true);

// Selection from given block scores (any estimator); used by estimate() and the proxy study.
BlockMask select_blocks(const at::Tensor& scores, const XAttentionConfig& cfg, int64_t q_len, int64_t k_len,
                        const AttentionOptions& opts);

// Exact attention restricted to the kept blocks (non-kept blocks are -inf), with the
// causal mask and key lengths applied inside blocks. Rows with no kept block output zeros
// and LSE -inf. Math in fp32 (fp64 for fp64 inputs).
AttentionOutput block_sparse_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                       const BlockMask& mask, const AttentionOptions& opts = {},
                                       bool return_lse = false);

// Exact dense attention in fp32 math (fp64 for fp64 inputs): the oracle.
AttentionOutput dense_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                const AttentionOptions& opts = {}, bool return_lse = false);

// What attention() computed. The sums stay on the call's device: filling them queues two small
// reductions and reads nothing back, so asking for statistics at every call (DecoderLM's
// on_attention hook, per layer) does not make the host wait for the GPU. density() and
// density_per_head() read them back, and that waits for the GPU.
struct AttentionStats {
  bool dense = true;
  at::Tensor kept;        // int64 [H]: kept blocks per head, over batches and rows (undefined when dense)
  at::Tensor computable;  // int64 [H]: blocks that could be computed (causal triangle, valid keys; undefined when dense)
  double density() const;               // kept / computable over everything; 1 when dense
  at::Tensor density_per_head() const;  // float64 [H] on the sums' device; empty when dense
};

// Dense or XAttention in one call, as the spec says. `stats` costs no synchronisation (see
// AttentionStats); PolicyAttention (pipelines/attention_policy.h) likewise queues each call's sums
// and reads all of them back in one copy when its statistics are asked for.
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const AttentionSpec& spec,
                     const AttentionOptions& opts = {}, AttentionStats* stats = nullptr);

// ---------------------------------------------------------------------------
template <class V>
void XAttentionConfig::fields(V& v) {
  namespace c = xattn::config;
  v.field("stride", stride, "antidiagonal stride S (4, 8, 16, 32 or 64)", c::one_of<int>({4, 8, 16, 32, 64}));
  v.field("block_size", block_size, "query/key block size B (64 or 128); a multiple of the stride",
          c::one_of<int>({64, 128}));
  v.field("threshold", threshold, "tau in [0, 1]: share of each row's estimated mass to keep; 1 = dense",
          c::range(0.0, 1.0));
  v.field("head_thresholds", head_thresholds, "optional per-head tau list (one per query head)",
          c::each(c::range(0.0, 1.0)));
  v.field("selection", selection, "threshold, top_k or top_ratio",
          c::one_of<std::string>({"threshold", "top_k", "top_ratio"}));
  v.field("top_k", top_k, "blocks kept per row with selection top_k", c::at_least(1));
  v.field("top_ratio", top_ratio, "share of computable blocks kept per row with selection top_ratio",
          c::range(0.0, 1.0));
  v.field("force_sink", force_sink, "causal: always keep the first key block");
  v.field("force_diagonal", force_diagonal, "causal: always keep the diagonal key blocks");
  v.field("keep_scores", keep_scores, "return the estimated block scores with the mask");
}

template <class V>
void AttentionSpec::fields(V& v) {
  v.field("mode", mode, "dense or xattention", xattn::config::one_of<std::string>({"dense", "xattention"}));
  v.field("xattention", xattention, "block selection settings");
}

}  // namespace xattn::attention
