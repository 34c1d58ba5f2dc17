// CUDA kernels against the ATen reference (label gpu; skipped without a GPU).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>

#ifdef XATTN_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#endif

#include "core/attention/cuda_dispatch.h"
#include "core/attention/synthetic.h"
#include "core/attention/xattention.h"
#include "core/ops/fused.h"
#include "core/device.h"

using namespace xattn::attention;

namespace {

#define REQUIRE_CUDA_KERNELS()                                                              \
  do {                                                                                      \
    std::string why;                                                                        \
    if (!xattn::cuda_available()) GTEST_SKIP() << "no CUDA device visible";                 \
    at::Tensor probe = at::zeros({1, 8, 1, 64}, at::TensorOptions(at::kCUDA).dtype(at::kBFloat16)); \
    if (!cuda::supports_estimate(probe, probe, 8, 64, &why)) GTEST_SKIP() << why;           \
  } while (0)

struct Case {
  int64_t B, Lq, Lk, H, Hkv, D, S, bs;
  bool causal;
  at::ScalarType dtype;
  int64_t key_len;  // 0: all keys valid (batch 0 only gets the shorter length)
};

const Case kCases[] = {
    {1, 1000, 1000, 4, 4, 128, 8, 128, false, at::kBFloat16, 0},
    {2, 777, 777, 8, 2, 64, 16, 128, false, at::kHalf, 500},   // odd length, GQA, batch, key padding
    {1, 600, 1031, 4, 1, 128, 8, 64, true, at::kBFloat16, 0},  // causal, offset 431
    {2, 1024, 1024, 2, 2, 64, 4, 128, true, at::kBFloat16, 0}, // stride 4
    {1, 513, 900, 6, 3, 128, 32, 128, true, at::kHalf, 0},     // stride 32, offset 387
    {1, 300, 300, 2, 1, 64, 32, 64, false, at::kBFloat16, 0},  // 2 groups per block
};

AttentionOptions opts_for(const Case& c, at::Device dev) {
  AttentionOptions o;
  o.causal = c.causal;
  if (c.key_len > 0) {
    std::vector<int64_t> lens(static_cast<size_t>(c.B), c.Lk);
    lens[0] = c.key_len;
    o.key_lengths = at::tensor(lens).to(dev);
  }
  return o;
}

}  // namespace

TEST(XAttentionCuda, ScoresMatchTheReference) {
  REQUIRE_CUDA_KERNELS();
  at::manual_seed(31);
  // Lengths that are multiples of the stride take the TMA kernels (three warpgroups by default,
  // two with XATTN_SCORING_WARPGROUPS=2); the others the cp.async gather.
  for (const char* wgs : {"3", "2"})
  for (const Case& c : kCases) {
    ::setenv("XATTN_SCORING_WARPGROUPS", wgs, 1);
    at::Tensor q = at::randn({c.B, c.Lq, c.H, c.D}).mul(1.5).to(c.dtype).cuda();
    at::Tensor k = at::randn({c.B, c.Lk, c.Hkv, c.D}).to(c.dtype).cuda();
    AttentionOptions o = opts_for(c, at::kCUDA);
    o.backend = Backend::kCuda;
    const at::Tensor got = antidiagonal_block_scores(q, k, c.S, c.bs, o).cpu();
    AttentionOptions r = opts_for(c, at::kCPU);
    r.backend = Backend::kReference;
    // Reference in fp32 from the same rounded inputs: only the summation order differs.
    const at::Tensor want = antidiagonal_block_scores(q.cpu().to(at::kFloat), k.cpu().to(at::kFloat), c.S, c.bs, r);
    EXPECT_TRUE(at::allclose(got, want, 1e-3, 2e-5))
        << "warpgroups " << wgs << " Lq " << c.Lq << " Lk " << c.Lk << " S " << c.S << " max diff "
        << (got - want).abs().max().item<float>();
  }
  ::unsetenv("XATTN_SCORING_WARPGROUPS");
}

// The three-warpgroup kernel (192 query groups per CTA) and the two-warpgroup one (128) give the
// same scores: every stride and block size the wgmma path takes, head dims 64 and 128, fp16, GQA,
// batch with per-batch key lengths, causal with an offset, split and unsplit key ranges.
TEST(XAttentionCuda, ThreeWarpgroupScoringKernelMatchesTheTwoWarpgroupOne) {
  REQUIRE_CUDA_KERNELS();
  at::manual_seed(43);
  struct Shape {
    int64_t B, Lq, Lk, H, Hkv, D, S, bs;
    bool causal;
    at::ScalarType dtype;
  };
  const Shape shapes[] = {
      {1, 8 * 500, 8 * 500, 2, 1, 128, 8, 128, false, at::kBFloat16},   // 3 row tiles of 192, last partial
      {2, 16 * 300, 16 * 420, 4, 2, 64, 16, 128, false, at::kHalf},     // GQA, batch, key lengths
      {1, 8 * 410, 8 * 700, 3, 1, 128, 8, 64, true, at::kBFloat16},     // causal, offset, block 64
      {1, 4 * 800, 4 * 800, 2, 2, 128, 4, 128, true, at::kBFloat16},    // stride 4 (32 groups per block)
      {1, 32 * 200, 32 * 260, 2, 1, 64, 32, 128, false, at::kBFloat16}, // stride 32 (4 groups per block)
  };
  for (const Shape& c : shapes) {
    at::Tensor q = at::randn({c.B, c.Lq, c.H, c.D}).mul(1.5).to(c.dtype).cuda();
    at::Tensor k = at::randn({c.B, c.Lk, c.Hkv, c.D}).to(c.dtype).cuda();
    AttentionOptions o;
    o.causal = c.causal;
    o.backend = Backend::kCuda;
    if (c.B > 1) o.key_lengths = at::tensor(std::vector<int64_t>{c.Lk, c.Lk - 777}).cuda();
    for (const char* parts : {"1", "3"}) {
      ::setenv("XATTN_SCORING_SPLIT", parts, 1);
      ::setenv("XATTN_SCORING_WARPGROUPS", "2", 1);
      const at::Tensor two = antidiagonal_block_scores(q, k, c.S, c.bs, o).cpu();
      ::setenv("XATTN_SCORING_WARPGROUPS", "3", 1);
      const at::Tensor three = antidiagonal_block_scores(q, k, c.S, c.bs, o).cpu();
      EXPECT_TRUE(at::allclose(three, two, 1e-5, 1e-7))
          << "Lq " << c.Lq << " S " << c.S << " parts " << parts << " max diff "
          << (three - two).abs().max().item<float>();
      EXPECT_GT(three.sum().item<float>(), 0.f);
    }
  }
  ::unsetenv("XATTN_SCORING_SPLIT");
  ::unsetenv("XATTN_SCORING_WARPGROUPS");
}

// Splitting each row tile's key range over several CTAs (XATTN_SCORING_SPLIT=n; chosen
// automatically for long inputs) gives the unsplit scores up to float rounding: causal rows
// shorter than some parts, GQA, per-batch key lengths, both load paths (lengths that are and are
// not multiples of the stride), parts of one and of two key tiles, and the grid's row-tile groups
// (XATTN_SCORING_GROUP: one row tile, and 2 of the 3 row tiles, i.e. a shorter last group).
TEST(XAttentionCuda, SplitScoringKernelMatchesTheUnsplitOne) {
  REQUIRE_CUDA_KERNELS();
  at::manual_seed(41);
  for (const int tail : {0, 3}) {
    for (const bool causal : {false, true}) {
      const int64_t B = causal ? 1 : 2;
      at::Tensor q = at::randn({B, 2 * 192 * 8 + 8 * 17 + tail, 4, 128}).to(at::kBFloat16).cuda();  // 3 row tiles
      at::Tensor k = at::randn({B, 5 * 256 * 8 + 8 * 40 + tail, 2, 128}).to(at::kBFloat16).cuda();  // 6 key tiles
      AttentionOptions o;
      o.causal = causal;
      o.backend = Backend::kCuda;
      if (!causal) o.key_lengths = at::tensor(std::vector<int64_t>{k.size(1), 3001});
      ::setenv("XATTN_SCORING_SPLIT", "1", 1);
      const at::Tensor whole = antidiagonal_block_scores(q, k, 8, 128, o).cpu();
      for (const char* parts : {"2", "6"}) {
        for (const char* group : {"1", "2"}) {
          ::setenv("XATTN_SCORING_SPLIT", parts, 1);
          ::setenv("XATTN_SCORING_GROUP", group, 1);
          const at::Tensor split = antidiagonal_block_scores(q, k, 8, 128, o).cpu();
          EXPECT_TRUE(at::allclose(split, whole, 1e-5, 1e-7))
              << "tail " << tail << " causal " << causal << " parts " << parts << " group " << group
              << " max diff " << (split - whole).abs().max().item<float>();
        }
      }
      ::unsetenv("XATTN_SCORING_SPLIT");
      ::unsetenv("XATTN_SCORING_GROUP");
      EXPECT_GT(whole.sum().item<float>(), 0.f);
    }
  }
}

namespace {

// A selection of each kind for case c (top-ratio 0.3; per-head tau for the four-head cases).
XAttentionConfig selection_config(const Case& c, const char* selection, int top_k) {
  XAttentionConfig cfg;
  cfg.stride = static_cast<int>(c.S);
  cfg.block_size = static_cast<int>(c.bs);
  cfg.selection = selection;
  cfg.top_k = top_k;
  cfg.top_ratio = 0.3;
  if (c.H == 4) cfg.head_thresholds = {0.5, 0.9, 0.95, 1.0};
  return cfg;
}

// Poison: the selection's outputs come from a workspace filled with garbage first, so an element
// the kernels leave unwritten shows in the checks.
void poison_selection_outputs(Workspace& ws, int64_t B, int64_t H, int64_t qb, int64_t kb, const at::Device& dev) {
  ws.get("mask", {B, H, qb, kb}, at::kBool, dev).fill_(true);
  ws.get("indices", {B, H, qb, kb}, at::kInt, dev).fill_(12345);
  ws.get("counts", {B, H, qb}, at::kInt, dev).fill_(-7);
  ws.get("kept", {B, H}, at::kLong, dev).fill_(-7);
  ws.get("computable", {B, H}, at::kLong, dev).fill_(-7);
  ws.get("kept_mass", {B, H}, at::kDouble, dev).fill_(std::nan(""));
  ws.get("row_mass", {B, H, qb, 2}, at::kFloat, dev).fill_(std::nanf(""));
}

// A kernel selection `got` on `scores` against the ATen reference on the same scores: threshold
// masks agree up to rows whose crossing block is within 1e-3 of tau, top-k / top-ratio masks
// exactly; counts, per-head totals, kept mass and the ascending index lists follow from the
// kernel's own mask.
void expect_mask_matches(const BlockMask& got, const at::Tensor& scores, const XAttentionConfig& cfg, int64_t Lq,
                         int64_t Lk, const AttentionOptions& r) {
  const at::Tensor m = got.mask.cpu();
  const BlockMask ref = select_blocks(scores.cpu(), cfg, Lq, Lk, r);
  if (cfg.selection == "threshold") {
    auto shifted = [&](double d) {
      XAttentionConfig x = cfg;
      x.threshold = std::min(1.0, std::max(0.0, cfg.threshold + d));
      for (double& t : x.head_thresholds) t = std::min(1.0, std::max(0.0, t + d));
      return select_blocks(scores.cpu(), x, Lq, Lk, r).mask;
    };
    // Selection grows with tau: a kernel mask differing only where the crossing block is
    // within 1e-3 of the threshold lies between the reference masks at tau -/+ 1e-3.
    EXPECT_FALSE((shifted(-1e-3) & ~m).any().item<bool>()) << "kernel dropped a block needed at tau - 1e-3";
    EXPECT_FALSE((m & ~shifted(1e-3)).any().item<bool>()) << "kernel kept a block not needed at tau + 1e-3";
    const double agree = m.eq(ref.mask).to(at::kDouble).mean().item<double>();
    EXPECT_GE(agree, 0.995) << cfg.selection;
  } else {
    EXPECT_TRUE(at::equal(m, ref.mask)) << cfg.selection << " S " << cfg.stride;
  }
  EXPECT_TRUE(at::equal(got.counts.cpu(), m.sum(-1).to(at::kInt)));
  EXPECT_TRUE(at::equal(got.computable.cpu(), ref.computable));
  EXPECT_TRUE(at::equal(got.kept.cpu(), m.sum({2, 3}).to(at::kLong)));
  // Kept share of the mass (summed per row in the kernel): the same as over the kernel's own
  // mask in double precision.
  const at::Tensor sc = scores.cpu().to(at::kDouble);
  const at::Tensor want_mass = (sc * m).sum({2, 3}) / sc.sum({2, 3}).clamp_min(1e-30);
  EXPECT_TRUE(at::allclose(got.kept_mass.cpu(), want_mass, 1e-5, 1e-7))
      << cfg.selection << " max diff " << (got.kept_mass.cpu() - want_mass).abs().max().item<double>();
  // Index lists: the kept blocks ascending, then -1.
  const at::Tensor idx = got.indices.cpu();
  const at::Tensor cols = at::arange(m.size(3)).to(at::kInt).expand_as(idx);
  const at::Tensor want_idx = std::get<0>(at::where(m, cols, cols + static_cast<int>(m.size(3))).sort(-1));
  EXPECT_TRUE(at::equal(idx, at::where(want_idx < m.size(3), want_idx, at::full_like(want_idx, -1))));
}

void expect_selection_matches(const at::Tensor& scores, const XAttentionConfig& cfg, int64_t Lq, int64_t Lk,
                              const AttentionOptions& o, const AttentionOptions& r) {
  Workspace ws;
  AttentionOptions ow = o;
  ow.workspace = &ws;
  (void)cuda::select(scores, cfg, Lq, Lk, ow);  // sizes the slots
  poison_selection_outputs(ws, scores.size(0), scores.size(1), scores.size(2), scores.size(3), scores.device());
  expect_mask_matches(cuda::select(scores, cfg, Lq, Lk, ow), scores, cfg, Lq, Lk, r);
}

}  // namespace

TEST(XAttentionCuda, SelectionMatchesTheReferenceUpToNearThresholdRows) {
  REQUIRE_CUDA_KERNELS();
  at::manual_seed(32);
  for (const Case& c : kCases) {
    at::Tensor q = at::randn({c.B, c.Lq, c.H, c.D}).mul(2.0).to(c.dtype).cuda();
    at::Tensor k = at::randn({c.B, c.Lk, c.Hkv, c.D}).to(c.dtype).cuda();
    AttentionOptions o = opts_for(c, at::kCUDA);
    const at::Tensor scores = cuda::antidiagonal_scores(q, k, c.S, c.bs, o);
    AttentionOptions r = opts_for(c, at::kCPU);
    for (const char* sel : {"threshold", "top_k", "top_ratio"}) {
      const XAttentionConfig cfg = selection_config(c, sel, 3);
      SCOPED_TRACE(testing::Message() << sel << " Lq " << c.Lq << " Lk " << c.Lk);
      expect_selection_matches(scores, cfg, c.Lq, c.Lk, o, r);
    }
  }
}

// Rows of every sort size the selection kernels have (warp sorts of 32 ... 512 blocks, the
// CTA-wide sorts beyond), on scores with many exact ties (small integers), so the order among
// equal scores (by index, as the reference's stable sort) decides the top-k / top-ratio masks.
TEST(XAttentionCuda, SelectionOfEveryRowLengthMatchesTheReference) {
  REQUIRE_CUDA_KERNELS();
  at::manual_seed(33);
  struct Rows {
    int64_t Lq, Lk;
    bool causal;
  };
  const Rows kRows[] = {
      {300, 4000, false},           // 32 key blocks: the narrowest warp sort
      {256, 128 * 200 + 5, false},  // 201 blocks, a tail block
      {1000, 128 * 500, false},     // 500: the widest warp sort
      {1000, 128 * 1000, false},    // 1000: CTA-wide sort
      {200, 128 * 1500, false},     // 1500: the next CTA-wide size
      {128 * 600, 128 * 600, true}, // causal rows reaching 1 ... 600 blocks: every warp size
      {128 * 5, 128 * 1100 - 7, true},  // causal, offset: rows reaching ~1096-1100 blocks
  };
  for (const Rows& c : kRows) {
    const int64_t qb = (c.Lq + 127) / 128, kb = (c.Lk + 127) / 128;
    for (const bool ties : {true, false}) {
      at::Tensor s = ties ? at::randint(0, 6, {1, 2, qb, kb}).to(at::kFloat) : at::rand({1, 2, qb, kb});
      if (c.causal) {  // blocks past a row's diagonal score 0, as in real scores (the mass statistics rely on it)
        const at::Tensor last_q = (at::arange(1, qb + 1) * 128).clamp_max(c.Lq) - 1 + (c.Lk - c.Lq);
        s = s * (at::arange(kb).unsqueeze(0) * 128 <= last_q.unsqueeze(1)).to(at::kFloat);
      }
      s = (s / s.sum(-1, true).clamp_min(1.f)).cuda();
      AttentionOptions o, r;
      o.causal = r.causal = c.causal;
      for (const char* sel : {"threshold", "top_k", "top_ratio"}) {
        XAttentionConfig cfg;
        cfg.block_size = 128;
        cfg.selection = sel;
        cfg.top_k = 7;
        cfg.top_ratio = 0.35;
        cfg.head_thresholds = {0.6, 0.9};
        SCOPED_TRACE(testing::Message() << sel << " ties " << ties << " Lq " << c.Lq << " Lk " << c.Lk << " causal "
                                        << c.causal);
        expect_selection_matches(s, cfg, c.Lq, c.Lk, o, r);
      }
    }
  }
}

#ifdef XATTN_WITH_CUDA
// estimate() in one call (on Hopper, split scoring launches finish their scores and select each
// row in one kernel) against antidiagonal_scores + the reference selection: the scores within
// float rounding of the separate call's, every output written (poisoned workspace), the mask as
// the reference's on those scores. The cases have several key tiles (a split launch): TMA and
// cp.async row tiles (192 / 128 groups), rows of up to 256 and 512 blocks, gpb 4 ... 16, causal
// offsets, key padding, GQA; the last two cannot fuse (gpb 32, rows of 625 blocks) and check
// the separate path behind the same call.
TEST(XAttentionCuda, EstimateInOneCallMatchesScoresThenSelection) {
  REQUIRE_CUDA_KERNELS();
  at::manual_seed(34);
  const int major = at::cuda::getCurrentDeviceProperties()->major;
  struct Fused {
    Case c;
    bool fuses;  // on Hopper
  };
  const Fused kFused[] = {
      {{1, 5000, 5000, 4, 2, 128, 8, 128, true, at::kBFloat16, 0}, true},       // 3 key tiles, TMA
      {{2, 3001, 6000, 4, 4, 64, 16, 128, false, at::kHalf, 4500}, true},       // cp.async tiles, padding
      {{1, 1000, 128 * 400 + 72, 2, 1, 128, 8, 128, true, at::kBFloat16, 0}, true},  // 401 blocks, offset
      {{1, 4096, 8192, 2, 2, 128, 16, 64, false, at::kBFloat16, 0}, true},       // gpb 4
      {{1, 3000, 3000, 2, 1, 128, 4, 128, true, at::kBFloat16, 0}, false},       // gpb 32
      {{1, 600, 40000, 2, 2, 128, 8, 64, false, at::kBFloat16, 0}, false},       // 625 blocks
  };
  for (const Fused& f : kFused) {
    const Case& c = f.c;
    at::Tensor q = at::randn({c.B, c.Lq, c.H, c.D}).mul(2.0).to(c.dtype).cuda();
    at::Tensor k = at::randn({c.B, c.Lk, c.Hkv, c.D}).to(c.dtype).cuda();
    const AttentionOptions o = opts_for(c, at::kCUDA), r = opts_for(c, at::kCPU);
    const at::Tensor want = cuda::antidiagonal_scores(q, k, c.S, c.bs, o).cpu();
    for (const char* sel : {"threshold", "top_k", "top_ratio"}) {
      XAttentionConfig cfg = selection_config(c, sel, 5);
      cfg.keep_scores = true;
      SCOPED_TRACE(testing::Message() << sel << " Lq " << c.Lq << " Lk " << c.Lk << " S " << c.S << " bs " << c.bs);
      Workspace ws;
      AttentionOptions ow = o;
      ow.workspace = &ws;
      (void)cuda::estimate(q, k, cfg, ow);  // sizes the slots
      poison_selection_outputs(ws, want.size(0), want.size(1), want.size(2), want.size(3), q.device());
      ws.get("scores", want.sizes(), at::kFloat, q.device()).fill_(std::nanf(""));
      bool fused = false;
      const BlockMask got = cuda::estimate(q, k, cfg, ow, &fused);
      EXPECT_EQ(fused, f.fuses && major == 9);
      const at::Tensor scores = got.scores.cpu();
      EXPECT_TRUE(at::allclose(scores, want, 1e-5, 1e-9))
          << "max diff " << (scores - want).abs().max().item<float>();
      expect_mask_matches(got, got.scores, cfg, c.Lq, c.Lk, r);
    }
  }
}
#endif  // XATTN_WITH_CUDA

TEST(XAttentionCuda, EstimateOnSyntheticVideoAgreesWithTheReference) {
  REQUIRE_CUDA_KERNELS();
  synthetic::VideoConfig v;
  v.frames = 5, v.height = 24, v.width = 32, v.text_tokens = 64, v.padded_text = 20, v.heads = 6, v.head_dim = 128;
  synthetic::Workload w = synthetic::video_like(v, at::kCUDA);
  const at::Tensor q = w.q.to(at::kBFloat16), k = w.k.to(at::kBFloat16);
  XAttentionConfig cfg;
  const BlockMask got = estimate(q, k, cfg, w.opts);
  AttentionOptions r = w.opts;
  r.backend = Backend::kReference;
  r.key_lengths = w.opts.key_lengths.cpu();
  const BlockMask ref = estimate(q.cpu().to(at::kFloat), k.cpu().to(at::kFloat), cfg, r);
  const double agree = got.mask.cpu().eq(ref.mask).to(at::kDouble).mean().item<double>();
  EXPECT_GE(agree, 0.995);
  EXPECT_NEAR(got.density(), ref.density(), 0.01);
}


#ifdef XATTN_WITH_CUDA
// estimate() on the GPU makes no host round trip: it can be captured in a CUDA graph and
// replayed on new inputs (copied into the captured input tensors).
TEST(XAttentionCuda, EstimateIsCapturableInACudaGraph) {
  REQUIRE_CUDA_KERNELS();
  at::manual_seed(33);
  const auto opt = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  at::Tensor q = at::randn({2, 1500, 8, 128}, opt), k = at::randn({2, 1500, 4, 128}, opt);
  XAttentionConfig cfg;
  AttentionOptions o;
  o.causal = true;
  o.key_lengths = at::tensor(std::vector<int64_t>{1500, 1200}, at::TensorOptions().device(at::kCUDA));
  estimate(q, k, cfg, o);  // warm-up outside capture (kernel attributes, allocator)
  c10::cuda::CUDAStream stream = c10::cuda::getStreamFromPool();
  c10::cuda::CUDAStreamGuard guard(stream);
  at::cuda::CUDAGraph graph;
  BlockMask captured;
  graph.capture_begin();
  captured = estimate(q, k, cfg, o);
  graph.capture_end();
  for (int round = 0; round < 2; ++round) {
    q.copy_(at::randn(q.sizes(), opt).mul(2.0));
    k.copy_(at::randn(k.sizes(), opt));
    graph.replay();
    const BlockMask fresh = estimate(q, k, cfg, o);
    stream.synchronize();
    EXPECT_TRUE(at::equal(captured.mask.cpu(), fresh.mask.cpu())) << "round " << round;
    EXPECT_TRUE(at::equal(captured.indices.cpu(), fresh.indices.cpu())) << "round " << round;
  }
}
#endif  // XATTN_WITH_CUDA

// The block-sparse attention kernels (each generation this GPU runs) against the fp32 reference
// on random masks of several densities (with empty rows), GQA, key padding, causal offsets, odd
// lengths. Outputs are poisoned: a NaN-filled block of the output's size is freed just before
// each call, so the caching allocator hands it back and any row a kernel skips stays NaN.
TEST(XAttentionCuda, BlockSparseAttentionMatchesTheReference) {
  REQUIRE_CUDA_KERNELS();
  const auto gpus = xattn::cuda_devices();
  const int major = gpus.empty() ? 0 : gpus.front().cc_major;
  std::vector<std::pair<std::string, std::string>> kernels = {{"mma_sync", ""}};  // kernel, XATTN_ATTENTION_PINGPONG
  if (major == 9) {
    kernels.push_back({"wgmma", ""});          // TMA-fed by a producer warpgroup, consumers in turns
    kernels.push_back({"wgmma", "0"});         // the same without the turns
    kernels.push_back({"wgmma_inline", ""});   // TMA issued by a consumer thread
    kernels.push_back({"wgmma_cp_async", ""});  // the fallback for layouts TMA cannot describe
  }
  for (const auto& [kernel, pingpong] : kernels) {
  SCOPED_TRACE("kernel " + kernel + " pingpong '" + pingpong + "'");
  setenv("XATTN_ATTENTION_KERNEL", kernel.c_str(), 1);
  setenv("XATTN_ATTENTION_PINGPONG", pingpong.c_str(), 1);
  at::manual_seed(34);
  struct A {
    int64_t B, Lq, Lk, H, Hkv, D;
    bool causal;
    at::ScalarType dtype;
    int64_t key_len;
    double density;
    double q_scale = 1.0;  // > 1: peaked rows whose running maximum jumps far (the lazy rescale moves it)
  };
  const A cases[] = {
      {1, 1000, 1000, 4, 4, 128, false, at::kBFloat16, 0, 0.4},
      {2, 777, 777, 8, 2, 64, false, at::kHalf, 500, 0.9},
      {1, 600, 1031, 4, 1, 128, true, at::kBFloat16, 0, 0.3},
      {2, 1024, 1024, 2, 2, 128, true, at::kBFloat16, 0, 1.0},
      {1, 1300, 1300, 2, 1, 64, true, at::kHalf, 0, 0.15},
      {1, 900, 900, 4, 2, 128, true, at::kBFloat16, 0, 0.6, 8.0},
  };
  for (const A& c : cases) {
    at::Tensor q = (at::randn({c.B, c.Lq, c.H, c.D}) * c.q_scale).to(c.dtype),
               k = at::randn({c.B, c.Lk, c.Hkv, c.D}).to(c.dtype);
    at::Tensor v = at::randn({c.B, c.Lk, c.Hkv, c.D}).to(c.dtype);
    AttentionOptions r;
    r.causal = c.causal;
    if (c.key_len > 0) {
      std::vector<int64_t> lens(static_cast<size_t>(c.B), c.Lk);
      lens[0] = c.key_len;
      r.key_lengths = at::tensor(lens);
    }
    at::Tensor raw = at::rand({c.B, c.H, (c.Lq + 127) / 128, (c.Lk + 127) / 128}) < c.density;
    raw[0][0][0].fill_(false);  // an empty row: zeros and LSE -inf
    const BlockMask m = BlockMask::from_mask(raw, 128, c.Lq, c.Lk, r);
    AttentionOptions o = r;
    o.backend = Backend::kCuda;
    if (r.key_lengths.defined()) o.key_lengths = r.key_lengths.cuda();
    at::Tensor qc = q.cuda(), kc = k.cuda(), vc = v.cuda();
    {
      at::Tensor poison_o = at::full({c.B, c.Lq, c.H, c.D}, NAN, qc.options());
      at::Tensor poison_l = at::full({c.B, c.H, c.Lq}, NAN, qc.options().dtype(at::kFloat));
    }
    const AttentionOutput got = block_sparse_attention(qc, kc, vc, m, o, true);
    r.backend = Backend::kReference;
    const AttentionOutput want = block_sparse_attention(q.to(at::kFloat), k.to(at::kFloat), v.to(at::kFloat), m, r, true);
    const at::Tensor out = got.out.cpu().to(at::kFloat);
    ASSERT_GT(m.kept.sum().item<int64_t>(), 0) << "the random mask kept nothing: the case tests nothing";
    const double rel = (out - want.out).norm().item<double>() / want.out.norm().item<double>();
    EXPECT_LT(rel, 1e-2) << "Lq " << c.Lq << " Lk " << c.Lk << " causal " << c.causal << " density " << c.density;
    EXPECT_EQ(out[0].narrow(0, 0, std::min<int64_t>(128, c.Lq)).select(1, 0).abs().max().item<float>(), 0.f);
    const at::Tensor lse = got.lse.cpu(), wl = want.lse.to(at::kFloat);
    EXPECT_TRUE(at::equal(at::isinf(lse), at::isinf(wl)));
    const at::Tensor fin = ~at::isinf(wl);
    ASSERT_TRUE(fin.any().item<bool>());
    EXPECT_LT((lse.masked_select(fin) - wl.masked_select(fin)).abs().max().item<float>(), 2e-2);
    EXPECT_FALSE(at::isnan(out).any().item<bool>()) << "rows left unwritten";
    // The softmax's lazy rescale (the reference maximum lags by up to 2^8) against the exact
    // running maximum: both within the reference's tolerance, and close to each other.
    setenv("XATTN_ATTENTION_LAZY_RESCALE", "0", 1);
    const AttentionOutput exact = block_sparse_attention(qc, kc, vc, m, o, true);
    unsetenv("XATTN_ATTENTION_LAZY_RESCALE");
    const at::Tensor ex = exact.out.cpu().to(at::kFloat);
    EXPECT_LT((ex - want.out).norm().item<double>() / want.out.norm().item<double>(), 1e-2);
    EXPECT_LT((ex - out).norm().item<double>() / want.out.norm().item<double>(), 1e-2);
    EXPECT_LT((exact.lse.cpu().masked_select(fin) - lse.masked_select(fin)).abs().max().item<float>(), 1e-3);
    // A row's last block at half width where a warpgroup sees at most its first 64 keys (the
    // causal diagonal, key tails of <= 64) against every block at full width: the skipped keys
    // are masked, so only rounding may differ.
    setenv("XATTN_ATTENTION_HALF_LAST", "0", 1);
    const AttentionOutput wide = block_sparse_attention(qc, kc, vc, m, o, true);
    unsetenv("XATTN_ATTENTION_HALF_LAST");
    EXPECT_LT((wide.out.cpu().to(at::kFloat) - out).norm().item<double>() / want.out.norm().item<double>(), 2e-3);
    EXPECT_LT((wide.lse.cpu().masked_select(fin) - lse.masked_select(fin)).abs().max().item<float>(), 1e-4);
    // The persistent kernel on 3 and 7 CTAs: each walks many rows (kept and empty ones) through one
    // stream of K/V stages and Q buffers, scoring each row's first block during the previous
    // row's last PV, and sending O out by a TMA store from the Q buffer (a CTA's last row too,
    // once the storer has emptied the buffer); every row must come out as with one row per CTA
    // (each CTA's only row is its last) and as with the consumers' own O stores (O_STAGE=0).
    setenv("XATTN_ATTENTION_PERSISTENT", "0", 1);
    const AttentionOutput one = block_sparse_attention(qc, kc, vc, m, o, true);
    setenv("XATTN_ATTENTION_PERSISTENT", "1", 1);
    setenv("XATTN_ATTENTION_CTAS", "3", 1);
    const AttentionOutput few = block_sparse_attention(qc, kc, vc, m, o, true);
    setenv("XATTN_ATTENTION_CTAS", "7", 1);  // rows are dealt in a snake: another last-wave remainder
    const AttentionOutput seven = block_sparse_attention(qc, kc, vc, m, o, true);
    setenv("XATTN_ATTENTION_CTAS", "3", 1);
    setenv("XATTN_ATTENTION_O_STAGE", "0", 1);
    const AttentionOutput direct = block_sparse_attention(qc, kc, vc, m, o, true);
    unsetenv("XATTN_ATTENTION_O_STAGE");
    unsetenv("XATTN_ATTENTION_CTAS");
    unsetenv("XATTN_ATTENTION_PERSISTENT");
    for (const AttentionOutput* x : {&one, &few, &seven, &direct}) {
      EXPECT_TRUE(at::equal(x->out, got.out))
          << (x == &few ? "3 CTAs" : x == &seven ? "7 CTAs" : x == &one ? "a CTA per row" : "3 CTAs, direct O stores")
          << ", Lq " << c.Lq << " causal " << c.causal;
      EXPECT_TRUE(at::equal(x->lse.nan_to_num(0, 1e30, -1e30), got.lse.nan_to_num(0, 1e30, -1e30)));
    }
  }
  }
  unsetenv("XATTN_ATTENTION_KERNEL");
  unsetenv("XATTN_ATTENTION_PINGPONG");
}

// Dense attention on CUDA tensors (SDPA where its semantics match, else our kernel with every
// block kept) against the fp32 reference, including the cases SDPA cannot take.
TEST(XAttentionCuda, DenseAttentionOnTheGpuMatchesTheReference) {
  REQUIRE_CUDA_KERNELS();
  at::manual_seed(35);
  struct C {
    int64_t Lq, Lk, H, Hkv, D;
    bool causal, lengths, lse;
    at::ScalarType dtype;
  };
  const C cases[] = {
      {700, 700, 4, 4, 128, false, false, false, at::kBFloat16},  // SDPA
      {640, 640, 2, 2, 64, true, false, false, at::kHalf},        // SDPA, causal
      {700, 700, 8, 2, 128, false, false, false, at::kBFloat16},  // GQA, short: SDPA with enable_gqa
      {5000, 5000, 8, 2, 128, true, false, false, at::kBFloat16}, // GQA, long: our kernel
      {1, 333, 8, 2, 128, true, false, false, at::kBFloat16},     // decode step, GQA: SDPA without a mask
      {1, 333, 4, 4, 64, true, false, false, at::kHalf},          // decode step: SDPA without a mask
      {3, 333, 4, 4, 64, true, false, false, at::kHalf},          // a few queries, causal: our kernel
      {300, 900, 4, 4, 128, true, false, false, at::kBFloat16},   // causal with offset: our kernel
      {500, 500, 4, 2, 64, false, true, true, at::kHalf},         // key lengths + LSE: our kernel
      {200, 200, 2, 2, 32, false, false, false, at::kFloat},      // fp32, D 32: SDPA
  };
  for (const C& c : cases) {
    SCOPED_TRACE(testing::Message() << "Lq " << c.Lq << " Lk " << c.Lk << " H " << c.H << "/" << c.Hkv << " causal "
                                    << c.causal << " lengths " << c.lengths);
    at::Tensor q = at::randn({2, c.Lq, c.H, c.D}).to(c.dtype), k = at::randn({2, c.Lk, c.Hkv, c.D}).to(c.dtype);
    at::Tensor v = at::randn({2, c.Lk, c.Hkv, c.D}).to(c.dtype);
    AttentionOptions r;
    r.causal = c.causal;
    if (c.lengths) r.key_lengths = at::tensor(std::vector<int64_t>{c.Lk - 123, c.Lk});
    AttentionOptions g = r;
    if (c.lengths) g.key_lengths = r.key_lengths.cuda();
    g.backend = Backend::kCuda;
    const AttentionOutput got = dense_attention(q.cuda(), k.cuda(), v.cuda(), g, c.lse);
    r.backend = Backend::kReference;
    const AttentionOutput want = dense_attention(q.to(at::kFloat), k.to(at::kFloat), v.to(at::kFloat), r, c.lse);
    const at::Tensor out = got.out.cpu().to(at::kFloat);
    ASSERT_EQ(out.sizes(), want.out.sizes());
    const double rel = (out - want.out).norm().item<double>() / want.out.norm().item<double>();
    EXPECT_LT(rel, c.dtype == at::kFloat ? 1e-4 : 1e-2);
    if (c.lse) {
      EXPECT_LT((got.lse.cpu() - want.lse.to(at::kFloat)).abs().max().item<float>(), 2e-2);
    }
  }
}

// With a Workspace, repeated estimates allocate nothing after the first call with the largest
// shape, upload per-head thresholds once, and give the same masks as without one.
TEST(XAttentionCuda, EstimateWithAWorkspaceReusesItsMemory) {
  REQUIRE_CUDA_KERNELS();
  at::manual_seed(36);
  const auto opt = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  XAttentionConfig cfg;
  cfg.stride = 8;
  cfg.head_thresholds = {0.9, 0.8, 0.95, 0.7};
  Workspace ws;
  AttentionOptions with;
  with.causal = true;
  with.workspace = &ws;
  with.key_lengths = at::tensor(std::vector<int64_t>{1500, 2048}).cuda();
  AttentionOptions without = with;
  without.workspace = nullptr;
  int64_t allocations = -1;
  const void* mask_ptr = nullptr;
  for (int call = 0; call < 3; ++call) {
    const int64_t L = call == 2 ? 1024 : 2048;  // the last call is smaller: still no allocation
    at::Tensor q = at::randn({2, L, 4, 128}, opt), k = at::randn({2, L, 2, 128}, opt);
    if (call == 2) with.key_lengths = without.key_lengths = at::tensor(std::vector<int64_t>{700, 1024}).cuda();
    const BlockMask a = estimate(q, k, cfg, with);
    const BlockMask b = estimate(q, k, cfg, without);
    EXPECT_TRUE(at::equal(a.mask.cpu(), b.mask.cpu())) << "call " << call;
    EXPECT_TRUE(at::equal(a.counts.cpu(), b.counts.cpu())) << "call " << call;
    EXPECT_TRUE(at::equal(a.kept.cpu(), b.kept.cpu())) << "call " << call;
    if (call == 0) {
      allocations = ws.allocations();
      mask_ptr = a.mask.data_ptr();
      EXPECT_GT(allocations, 0);
    } else {
      EXPECT_EQ(ws.allocations(), allocations) << "call " << call << " allocated";
      EXPECT_EQ(a.mask.data_ptr(), mask_ptr);
    }
  }
}

// attention()'s statistics stay on the GPU until asked for, and a later call that reuses the
// Workspace (where the estimate leaves its mask and sums) does not change an earlier call's.
TEST(XAttentionCuda, AttentionStatsOutliveTheWorkspacesNextCall) {
  REQUIRE_CUDA_KERNELS();
  at::manual_seed(37);
  const auto opt = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  const at::Tensor q = at::randn({1, 2048, 4, 128}, opt), k = at::randn({1, 2048, 2, 128}, opt),
                   v = at::randn({1, 2048, 2, 128}, opt);
  Workspace ws;
  AttentionOptions o;
  o.causal = true;
  o.workspace = &ws;
  AttentionOptions own = o;
  own.workspace = nullptr;
  AttentionSpec first, second;
  first.xattention.selection = second.xattention.selection = "top_ratio";
  first.xattention.top_ratio = 0.2;
  second.xattention.top_ratio = 0.6;
  AttentionStats a, b;
  attention(q, k, v, first, o, &a);
  attention(q, k, v, second, o, &b);
  EXPECT_TRUE(a.kept.is_cuda());
  const BlockMask ma = estimate(q, k, first.xattention, own), mb = estimate(q, k, second.xattention, own);
  EXPECT_LT(ma.density(), mb.density() - 0.2);  // the two calls' statistics differ
  EXPECT_DOUBLE_EQ(a.density(), ma.density());
  EXPECT_DOUBLE_EQ(b.density(), mb.density());
  EXPECT_TRUE(at::allclose(a.density_per_head().cpu(), ma.density_per_head().cpu(), 0, 0));
}

// The fused QK RMSNorm + rotary kernel against the ATen composition it replaces, on the GPU:
// bf16 and fp16, head dims 64 and 128, with and without rotation, a row count that is not a
// multiple of the 8 rows per CTA. Equal up to one unit in the last place (sum-of-squares order);
// almost all values are bit-identical.
TEST(XAttentionCuda, FusedRmsNormRopeMatchesTheAtenComposition) {
  REQUIRE_CUDA_KERNELS();
  at::manual_seed(43);
  for (const auto dtype : {at::kBFloat16, at::kHalf}) {
    for (const int64_t D : {64, 128}) {
      const auto opt = at::TensorOptions().device(at::kCUDA);
      const at::Tensor x = at::randn({2, 37, 3, D}, opt).mul(3.0).to(dtype);
      const at::Tensor w = at::randn({D}, opt).to(dtype);
      const at::Tensor angles = at::rand({37, D / 2}, opt).mul(6.3).repeat_interleave(2, 1);
      for (const bool rope : {false, true}) {
        const at::Tensor c = rope ? angles.cos() : at::Tensor(), s = rope ? angles.sin() : at::Tensor();
        const at::Tensor got = xattn::ops::rms_norm_rope(x, w, 1e-6, c, s).to(at::kFloat).cpu();
        const at::Tensor want = xattn::ops::rms_norm_rope_reference(x, w, 1e-6, c, s).to(at::kFloat).cpu();
        const double ulp = dtype == at::kBFloat16 ? 1.0 / 128 : 1.0 / 1024;
        const at::Tensor err = (got - want).abs();
        EXPECT_TRUE(at::all(err <= want.abs() * ulp + 1e-3).item<bool>())
            << "D " << D << " rope " << rope << " max err " << err.max().item<float>();
        EXPECT_GT(got.eq(want).to(at::kFloat).mean().item<float>(), 0.97f) << "D " << D << " rope " << rope;
        if (rope) {  // the rotation really happened: differs from the plain normalisation
          const at::Tensor plain = xattn::ops::rms_norm_rope_reference(x, w, 1e-6).to(at::kFloat).cpu();
          EXPECT_GT((got - plain).abs().max().item<float>(), 0.1f);
        }
      }
    }
  }
}
