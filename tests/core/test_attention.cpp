// XAttention reference: checked against naive loops in fp64, never against itself.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/attention/xattention.h"
#include "core/error.h"
#include "tests/test_util.h"

using namespace xattn::attention;

using xattn::testing::error_of;

namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

at::Tensor rnd(std::vector<int64_t> shape, at::ScalarType t = at::kDouble) {
  return at::randn(shape, at::TensorOptions().dtype(at::kDouble)).to(t);
}


// Antidiagonal block scores by explicit loops (spec §1), fp64.
at::Tensor naive_scores(const at::Tensor& q, const at::Tensor& k, int64_t S, int64_t bs, bool causal,
                        std::vector<int64_t> key_len = {}) {
  const int64_t B = q.size(0), Lq = q.size(1), H = q.size(2), D = q.size(3), Lk = k.size(1), Hkv = k.size(2);
  const int64_t G = H / Hkv, nq = (Lq + S - 1) / S, nk = (Lk + S - 1) / S, off = causal ? Lk - Lq : 0;
  const int64_t Qb = (Lq + bs - 1) / bs, Kb = (Lk + bs - 1) / bs;
  if (key_len.empty()) key_len.assign(B, Lk);
  auto qa = q.accessor<double, 4>();
  auto ka = k.accessor<double, 4>();
  at::Tensor A = at::zeros({B, H, Qb, Kb}, at::kDouble);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < nq; ++i) {
        std::vector<double> logit(nk, kNegInf);
        for (int64_t j = 0; j < nk; ++j) {
          if (j * S >= key_len[b]) continue;
          if (causal && j * S > i * S + off + S - 1) continue;
          double sum = 0;
          for (int64_t t = 0; t < S; ++t) {
            const int64_t qi = i * S + S - 1 - t, kj = j * S + t;
            if (qi >= Lq || kj >= Lk) continue;
            for (int64_t d = 0; d < D; ++d) sum += qa[b][qi][h][d] * ka[b][kj][h / G][d];
          }
          logit[j] = sum / std::sqrt(static_cast<double>(D)) / S;
        }
        double mx = kNegInf;
        for (double x : logit) mx = std::max(mx, x);
        double z = 0;
        for (double x : logit) z += std::exp(x - mx);
        for (int64_t j = 0; j < nk; ++j)
          A[b][h][i * S / bs][j * S / bs] += std::exp(logit[j] - mx) / z;
      }
  return A;
}

// Dense attention with -inf outside kept blocks, by the textbook formula, fp64.
at::Tensor naive_masked_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& bmask,
                                  int64_t bs, bool causal, std::vector<int64_t> key_len = {}) {
  const int64_t B = q.size(0), Lq = q.size(1), H = q.size(2), D = q.size(3), Lk = k.size(1), Hkv = k.size(2);
  const int64_t G = H / Hkv, off = causal ? Lk - Lq : 0;
  if (key_len.empty()) key_len.assign(B, Lk);
  at::Tensor out = at::zeros({B, Lq, H, v.size(3)}, at::kDouble);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      at::Tensor logits = at::matmul(q[b].select(1, h), k[b].select(1, h / G).t()) / std::sqrt(static_cast<double>(D));
      for (int64_t i = 0; i < Lq; ++i)
        for (int64_t j = 0; j < Lk; ++j) {
          const bool ok = (!bmask.defined() || bmask[b][h][i / bs][j / bs].item<bool>()) && j < key_len[b] &&
                          (!causal || j <= i + off);
          if (!ok) logits[i][j] = kNegInf;
        }
      at::Tensor p = at::softmax(logits, -1);
      p = at::where(at::isnan(p), at::zeros_like(p), p);
      out[b].select(1, h).copy_(at::matmul(p, v[b].select(1, h / G)));
    }
  return out;
}

double rel_err(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).norm().item<double>() / b.to(at::kDouble).norm().item<double>();
}

}  // namespace

TEST(XAttention, HeaderUsageExampleRuns) {
  at::manual_seed(0);
  // The example at the top of core/attention/xattention.h, verbatim.
  at::Tensor q = at::randn({1, 1000, 8, 64}), k = at::randn({1, 1000, 2, 64}), v = at::randn({1, 1000, 2, 64});
  XAttentionConfig cfg;
  cfg.block_size = 64;
  AttentionOptions opts;
  opts.causal = true;
  BlockMask mask = estimate(q, k, cfg, opts);
  AttentionOutput out = block_sparse_attention(q, k, v, mask, opts);
  double kept = mask.density();
  AttentionSpec spec;
  spec.xattention = cfg;
  at::Tensor o = attention(q, k, v, spec, opts);
  EXPECT_EQ(out.out.sizes(), q.sizes());
  EXPECT_GT(kept, 0.0);
  EXPECT_LE(kept, 1.0);
  EXPECT_TRUE(at::allclose(o, out.out));
}

TEST(XAttention, AntidiagonalScoresEqualExplicitSums) {
  at::manual_seed(1);
  struct Case {
    int64_t B, Lq, Lk, H, Hkv, D, S, bs;
    bool causal;
  };
  const Case cases[] = {
      {2, 75, 75, 4, 2, 16, 8, 64, false},    // odd length, GQA, batch
      {1, 75, 203, 4, 1, 16, 8, 64, true},    // causal, offset 128 (multiple of S)
      {2, 50, 131, 2, 2, 8, 4, 64, true},     // offset 81: not a multiple of S or B
      {1, 130, 130, 3, 3, 8, 16, 128, false}, // stride 16, block 128, tail block
      {1, 64, 97, 2, 1, 8, 32, 64, true},     // stride 32
      {1, 140, 140, 1, 1, 4, 64, 128, false}, // stride 64
  };
  for (const Case& c : cases) {
    at::Tensor q = rnd({c.B, c.Lq, c.H, c.D}), k = rnd({c.B, c.Lk, c.Hkv, c.D});
    AttentionOptions o;
    o.causal = c.causal;
    at::Tensor got = antidiagonal_block_scores(q, k, c.S, c.bs, o);
    at::Tensor want = naive_scores(q, k, c.S, c.bs, c.causal);
    EXPECT_TRUE(at::allclose(got, want, 1e-10, 1e-12))
        << "Lq " << c.Lq << " Lk " << c.Lk << " S " << c.S << " max diff " << (got - want).abs().max().item<double>();
  }
}

TEST(XAttention, PaddedKeysGetNoMassInScoresOrOutput) {
  at::manual_seed(2);
  const int64_t B = 2, L = 150, H = 2, D = 16;
  at::Tensor q = rnd({B, L, H, D}), k = rnd({B, L, H, D}), v = rnd({B, L, H, D});
  AttentionOptions o;
  o.key_lengths = at::tensor(std::vector<int64_t>{150, 70});
  at::Tensor got = antidiagonal_block_scores(q, k, 8, 64, o);
  EXPECT_TRUE(at::allclose(got, naive_scores(q, k, 8, 64, false, {150, 70}), 1e-10, 1e-12));
  EXPECT_EQ(got[1].narrow(2, 2, 1).abs().max().item<double>(), 0.0);  // key block 2 starts at 128 >= 70
  // Output with padded keys equals attention over the valid keys only.
  const AttentionOutput d = dense_attention(q, k, v, o);
  const AttentionOutput trimmed = dense_attention(q.narrow(0, 1, 1), k.narrow(0, 1, 1).narrow(1, 0, 70),
                                                  v.narrow(0, 1, 1).narrow(1, 0, 70));
  EXPECT_TRUE(at::allclose(d.out.narrow(0, 1, 1), trimmed.out, 1e-12, 1e-12));
  XAttentionConfig cfg;
  cfg.block_size = 64;
  cfg.selection = "top_k";
  cfg.top_k = 3;
  const BlockMask m = estimate(q, k, cfg, o);
  EXPECT_FALSE(m.mask[1].narrow(2, 2, 1).any().item<bool>()) << "a padding-only block was selected";
  EXPECT_EQ(m.computable[1][0].item<int64_t>(), 3 * 2);  // 3 query blocks x 2 valid key blocks
}

TEST(XAttention, ThresholdSelectionReachesTauAndIsMinimal) {
  at::manual_seed(3);
  for (bool causal : {false, true}) {
    const int64_t B = 2, Lq = 700, Lk = causal ? 900 : 700, H = 3, D = 16;
    at::Tensor q = rnd({B, Lq, H, D}, at::kFloat) * 2, k = rnd({B, Lk, H, D}, at::kFloat);
    XAttentionConfig cfg;
    cfg.block_size = 64;
    cfg.keep_scores = true;
    cfg.head_thresholds = {0.9, 0.5, 0.97};
    AttentionOptions o;
    o.causal = causal;
    const BlockMask m = estimate(q, k, cfg, o);
    const at::Tensor A = m.scores.to(at::kDouble);
    const int64_t Qb = m.q_blocks(), Kb = m.k_blocks(), off = causal ? Lk - Lq : 0;
    int rows = 0;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t i = 0; i < Qb; ++i) {
          const double tau = cfg.head_thresholds[h];
          const at::Tensor row = A[b][h][i], keep = m.mask[b][h][i];
          const double total = row.sum().item<double>(), kept = (row * keep).sum().item<double>();
          EXPECT_GE(kept, tau * total - 1e-9);
          // Forced: sink and the diagonal blocks of the row.
          const int64_t first = (i * 64 + off) / 64, last = (std::min((i + 1) * 64, Lq) - 1 + off) / 64;
          std::vector<bool> forced(Kb, false);
          if (causal) {
            forced[0] = true;
            for (int64_t j = first; j <= last; ++j) forced[j] = true;
            for (int64_t j = 0; j < Kb; ++j) {
              if (forced[j]) {
                EXPECT_TRUE(keep[j].item<bool>()) << "forced block " << j << " dropped";
              }
            }
          }
          // Minimality: dropping the smallest kept non-forced block falls below tau.
          double smallest = std::numeric_limits<double>::infinity();
          int64_t n_free = 0;
          for (int64_t j = 0; j < Kb; ++j)
            if (keep[j].item<bool>() && !forced[j]) {
              smallest = std::min(smallest, row[j].item<double>());
              ++n_free;
            }
          if (n_free > 0 && !(!causal && keep.sum().item<int64_t>() == 1)) {
            EXPECT_LT(kept - smallest, tau * total + 1e-12) << "row keeps more blocks than needed";
          }
          ++rows;
        }
    EXPECT_EQ(rows, B * H * Qb);
    // Kept-mass statistics: each head keeps at least its tau of the estimated mass.
    for (int64_t h = 0; h < H; ++h)
      EXPECT_GE(m.kept_mass.select(1, h).min().item<double>(), cfg.head_thresholds[h] - 1e-9);
    EXPECT_LE(m.kept_mass.max().item<double>(), 1.0 + 1e-12);
    // tau 0.5 keeps fewer blocks than tau 0.97.
    EXPECT_LT(m.kept.select(1, 1).sum().item<int64_t>(), m.kept.select(1, 2).sum().item<int64_t>());
  }
}

TEST(XAttention, TauZeroKeepsForcedAndTauOneKeepsAll) {
  at::manual_seed(4);
  at::Tensor q = rnd({1, 300, 2, 16}, at::kFloat), k = rnd({1, 300, 1, 16}, at::kFloat);
  XAttentionConfig cfg;
  cfg.block_size = 64;
  cfg.head_thresholds = {0.0, 1.0};
  AttentionOptions o;
  o.causal = true;
  const BlockMask m = estimate(q, k, cfg, o);
  // Head 0: sink + diagonal only: rows 0..4 keep 1, 2, 2, 2, 2 blocks.
  EXPECT_TRUE(at::equal(m.counts[0][0], at::tensor(std::vector<int32_t>{1, 2, 2, 2, 2})));
  EXPECT_EQ(m.kept[0][1].item<int64_t>(), m.computable[0][1].item<int64_t>());
  EXPECT_EQ(m.computable[0][1].item<int64_t>(), 15);  // 5 rows: 1+2+3+4+5
  // indices list kept blocks in ascending order, then -1.
  EXPECT_TRUE(at::equal(m.indices[0][0][3], at::tensor(std::vector<int32_t>{0, 3, -1, -1, -1})));
}

TEST(XAttention, TopKAndTopRatioCounts) {
  at::manual_seed(5);
  at::Tensor q = rnd({1, 640, 2, 16}, at::kFloat), k = rnd({1, 640, 2, 16}, at::kFloat);
  XAttentionConfig cfg;
  cfg.block_size = 64;
  cfg.selection = "top_k";
  cfg.top_k = 3;
  const BlockMask a = estimate(q, k, cfg);
  EXPECT_TRUE((a.counts == 3).all().item<bool>());
  cfg.selection = "top_ratio";
  cfg.top_ratio = 0.25;
  AttentionOptions causal;
  causal.causal = true;
  const BlockMask c = estimate(q, k, cfg, causal);
  // Row i can compute i+1 blocks; keeps max(ceil(0.25 (i+1)), forced) = sink + diagonal at least.
  for (int64_t i = 0; i < 10; ++i) {
    const int64_t want = std::max<int64_t>(static_cast<int64_t>(std::ceil(0.25 * (i + 1))), i == 0 ? 1 : 2);
    EXPECT_EQ(c.counts[0][0][i].item<int32_t>(), want) << "row " << i;
  }
}

TEST(XAttention, FullMaskEqualsDenseAttention) {
  at::manual_seed(6);
  for (bool causal : {false, true}) {
    at::Tensor q = rnd({2, 97, 4, 32}), k = rnd({2, causal ? 160 : 131, 2, 32}), v = rnd({2, k.size(1), 2, 24});
    AttentionOptions o;
    o.causal = causal;
    const BlockMask full = BlockMask::full(2, 4, 64, q.size(1), k.size(1), o);
    const AttentionOutput s = block_sparse_attention(q, k, v, full, o, true);
    const AttentionOutput d = dense_attention(q, k, v, o, true);
    EXPECT_TRUE(at::allclose(s.out, d.out, 1e-12, 1e-12));
    EXPECT_TRUE(at::allclose(s.lse, d.lse, 1e-10, 1e-10));  // fp64, different summation order
    EXPECT_TRUE(at::allclose(d.out, naive_masked_attention(q, k, v, at::Tensor(), 64, causal), 1e-10, 1e-10));
  }
}

TEST(XAttention, RandomMaskEqualsDenseWithOtherBlocksMinusInfinity) {
  at::manual_seed(7);
  for (bool causal : {false, true}) {
    const int64_t Lq = 150, Lk = causal ? 233 : 150;
    at::Tensor q = rnd({2, Lq, 4, 16}), k = rnd({2, Lk, 1, 16}), v = rnd({2, Lk, 1, 16});
    AttentionOptions o;
    o.causal = causal;
    o.key_lengths = at::tensor(std::vector<int64_t>{Lk, Lk - 41});
    at::Tensor raw = at::rand({2, 4, 3, (Lk + 63) / 64}) < 0.5;
    raw[0][0].fill_(false);  // an empty head: zeros and LSE -inf
    const BlockMask m = BlockMask::from_mask(raw, 64, Lq, Lk, o);
    const AttentionOutput s = block_sparse_attention(q, k, v, m, o, true);
    const at::Tensor want = naive_masked_attention(q, k, v, m.mask, 64, causal, {Lk, Lk - 41});
    EXPECT_TRUE(at::allclose(s.out, want, 1e-10, 1e-12)) << (s.out - want).abs().max().item<double>();
    EXPECT_EQ(s.out[0].select(1, 0).abs().max().item<double>(), 0.0);
    EXPECT_TRUE(at::isinf(s.lse[0][0]).all().item<bool>());
  }
}

TEST(XAttention, CausalWithFewerQueriesMatchesTheTailOfFullCausal) {
  at::manual_seed(8);
  const int64_t Lk = 190;
  at::Tensor qfull = rnd({1, Lk, 2, 16}), k = rnd({1, Lk, 2, 16}), v = rnd({1, Lk, 2, 16});
  AttentionOptions o;
  o.causal = true;
  const at::Tensor full = dense_attention(qfull, k, v, o).out;
  for (int64_t Lq : {1, 37, 64, 189}) {
    at::Tensor q = qfull.narrow(1, Lk - Lq, Lq);
    EXPECT_TRUE(at::allclose(dense_attention(q, k, v, o).out, full.narrow(1, Lk - Lq, Lq), 1e-12, 1e-12)) << Lq;
    const BlockMask m = BlockMask::full(1, 2, 64, Lq, Lk, o);
    EXPECT_TRUE(at::allclose(block_sparse_attention(q, k, v, m, o).out, full.narrow(1, Lk - Lq, Lq), 1e-12, 1e-12));
  }
}

TEST(XAttention, GqaEqualsRepeatedKeysAndValues) {
  at::manual_seed(9);
  at::Tensor q = rnd({1, 200, 6, 16}), k = rnd({1, 200, 2, 16}), v = rnd({1, 200, 2, 16});
  XAttentionConfig cfg;
  cfg.block_size = 64;
  cfg.keep_scores = true;
  const BlockMask m = estimate(q, k, cfg);
  const BlockMask m_rep = estimate(q, k.repeat_interleave(3, 2), cfg);
  EXPECT_TRUE(at::allclose(m.scores, m_rep.scores));
  EXPECT_TRUE(at::equal(m.mask, m_rep.mask));
  EXPECT_TRUE(at::allclose(block_sparse_attention(q, k, v, m).out,
                           block_sparse_attention(q, k.repeat_interleave(3, 2), v.repeat_interleave(3, 2), m).out,
                           1e-12, 1e-12));
}

TEST(XAttention, LowPrecisionInputsAndHeadDims) {
  at::manual_seed(10);
  for (auto t : {at::kBFloat16, at::kHalf, at::kFloat})
    for (int64_t D : {64, 128}) {
      at::Tensor q = rnd({1, 257, 2, D}), k = rnd({1, 257, 2, D}), v = rnd({1, 257, 2, D});
      AttentionOptions o;
      o.causal = true;
      const at::Tensor ref = dense_attention(q, k, v, o).out;
      const at::Tensor got = dense_attention(q.to(t), k.to(t), v.to(t), o).out;
      EXPECT_EQ(got.scalar_type(), t);
      const double tol = t == at::kFloat ? 1e-5 : 2e-2;  // input rounding of the dtype dominates
      EXPECT_LT(rel_err(got, ref), tol) << t << " D " << D;
      XAttentionConfig cfg;
      cfg.stride = 16;
      const BlockMask m = estimate(q.to(t), k.to(t), cfg, o);
      EXPECT_EQ(m.block_size, 128);
    }
}

TEST(XAttention, ScoreRowsSumToTheirQueryGroups) {
  at::manual_seed(11);
  for (int64_t S : {4, 8, 16, 32, 64})
    for (int64_t bs : {64, 128}) {
      if (bs % S) continue;
      at::Tensor q = rnd({1, 300, 1, 8}, at::kFloat), k = rnd({1, 333, 1, 8}, at::kFloat);
      const at::Tensor A = antidiagonal_block_scores(q, k, S, bs);
      const int64_t nq = (300 + S - 1) / S, gpb = bs / S;
      at::Tensor want = at::full({(300 + bs - 1) / bs}, static_cast<double>(gpb), at::kDouble);
      want[-1] = static_cast<double>(nq - (want.size(0) - 1) * gpb);
      EXPECT_TRUE(at::allclose(A[0][0].sum(-1).to(at::kDouble), want, 1e-5, 1e-5)) << "S " << S << " B " << bs;
    }
}

TEST(XAttention, AttentionDispatchesDenseOrSparse) {
  at::manual_seed(12);
  at::Tensor q = rnd({1, 512, 2, 16}, at::kFloat), k = rnd({1, 512, 2, 16}, at::kFloat), v = rnd({1, 512, 2, 16}, at::kFloat);
  AttentionSpec spec;
  spec.xattention.block_size = 64;
  spec.xattention.threshold = 1.0;
  AttentionStats st;
  const at::Tensor dense = attention(q, k, v, spec, {}, &st);
  EXPECT_TRUE(st.dense);
  EXPECT_TRUE(at::equal(dense, dense_attention(q, k, v).out));
  spec.xattention.threshold = 0.5;
  const at::Tensor sparse = attention(q, k, v, spec, {}, &st);
  EXPECT_FALSE(st.dense);
  const BlockMask m = estimate(q, k, spec.xattention);
  EXPECT_LT(st.density(), 1.0);
  EXPECT_DOUBLE_EQ(st.density(), m.density());
  EXPECT_TRUE(at::equal(st.density_per_head(), m.density_per_head()));
  EXPECT_EQ(st.density_per_head().size(0), 2);
  // Non-causal, no key lengths: all 2 x 8 x 8 blocks are computable, so the shares are plain counts.
  EXPECT_DOUBLE_EQ(st.density(), m.mask.sum().item<double>() / 128.0);
  EXPECT_TRUE(at::allclose(st.density_per_head(), m.mask.sum({0, 2, 3}).to(at::kDouble) / 64.0));
  spec.mode = "dense";
  attention(q, k, v, spec, {}, &st);
  EXPECT_TRUE(st.dense);
  EXPECT_EQ(st.density(), 1.0);
  EXPECT_FALSE(st.density_per_head().defined());
}

TEST(XAttention, BadInputNamesTheTensorOrField) {
  at::Tensor q = at::randn({1, 64, 4, 16}), k = at::randn({1, 64, 4, 16}), v = at::randn({1, 64, 4, 16});
  XAttentionConfig cfg;
  cfg.block_size = 64;
  EXPECT_NE(error_of([&] { estimate(q, at::randn({1, 64, 4, 8}), cfg); }).find("k: head_dim 8 differs from q's 16"),
            std::string::npos);
  EXPECT_NE(error_of([&] { estimate(q, at::randn({2, 64, 4, 16}), cfg); }).find("k: batch 2 differs"), std::string::npos);
  EXPECT_NE(error_of([&] { estimate(q, k.to(at::kHalf), cfg); }).find("k: dtype"), std::string::npos);
  EXPECT_NE(error_of([&] { estimate(q, at::randn({1, 64, 3, 16}), cfg); })
                .find("query heads (4) must be a multiple of key/value heads (3)"),
            std::string::npos);
  EXPECT_NE(error_of([&] { estimate(at::randn({1, 0, 4, 16}), k, cfg); }).find("empty sequence"), std::string::npos);
  EXPECT_NE(error_of([&] { estimate(at::randn({64, 4, 16}), k, cfg); }).find("q: expected [B, Lq, Hq, D]"),
            std::string::npos);
  EXPECT_NE(error_of([&] { block_sparse_attention(q, k, at::randn({1, 63, 4, 16}), BlockMask::full(1, 4, 64, 64, 64, {})); })
                .find("v: expected [1, 64, 4, Dv]"),
            std::string::npos);
  XAttentionConfig bad = cfg;
  bad.stride = 12;
  EXPECT_NE(error_of([&] { estimate(q, k, bad); }).find("xattention.stride: must be one of 4, 8, 16, 32, 64; got 12"),
            std::string::npos);
  bad = cfg;
  bad.stride = 64;
  bad.block_size = 64;
  EXPECT_EQ(error_of([&] { estimate(q, k, bad); }), "<no error>");
  bad.stride = 32;
  bad.block_size = 96;
  EXPECT_NE(error_of([&] { estimate(q, k, bad); }).find("xattention.block_size: must be one of 64, 128"),
            std::string::npos);
  bad = cfg;
  bad.threshold = 1.2;
  EXPECT_NE(error_of([&] { estimate(q, k, bad); }).find("xattention.threshold: must be in [0, 1], got 1.2"),
            std::string::npos);
  bad = cfg;
  bad.head_thresholds = {0.9, 0.9};
  EXPECT_NE(error_of([&] { estimate(q, k, bad); }).find("head_thresholds has 2 entries but there are 4 query heads"),
            std::string::npos);
  AttentionOptions o;
  o.key_lengths = at::tensor(std::vector<int64_t>{65});
  EXPECT_NE(error_of([&] { estimate(q, k, cfg, o); }).find("key_lengths[0] = 65 is outside [0, 64]"), std::string::npos);
  o = {};
  o.causal = true;
  EXPECT_NE(error_of([&] { estimate(at::randn({1, 65, 4, 16}), k, cfg, o); }).find("causal attention needs Lk >= Lq"),
            std::string::npos);
  AttentionSpec spec;
  spec.mode = "sparse";
  EXPECT_NE(error_of([&] { attention(q, k, v, spec); }).find("attention.mode: must be one of dense, xattention"),
            std::string::npos);
}

TEST(XAttention, WorkspaceGrowsOnlyWhenTooSmall) {
  Workspace ws;
  at::Tensor a = ws.get("x", {4, 8}, at::kFloat, at::kCPU);
  EXPECT_EQ(a.sizes(), (at::IntArrayRef{4, 8}));
  EXPECT_EQ(ws.allocations(), 1);
  at::Tensor b = ws.get("x", {2, 3}, at::kFloat, at::kCPU);  // fits: a view of the same memory
  EXPECT_EQ(ws.allocations(), 1);
  EXPECT_EQ(b.data_ptr(), a.data_ptr());
  ws.get("x", {5, 8}, at::kFloat, at::kCPU);  // larger: grows
  EXPECT_EQ(ws.allocations(), 2);
  ws.get("x", {5, 8}, at::kInt, at::kCPU);    // another dtype: reallocates
  EXPECT_EQ(ws.allocations(), 3);
  ws.get("y", {1}, at::kFloat, at::kCPU);     // another slot
  EXPECT_EQ(ws.allocations(), 4);
  at::Tensor t1 = ws.thresholds({0.9, 0.8}, at::kCPU);
  at::Tensor t2 = ws.thresholds({0.9, 0.8}, at::kCPU);
  EXPECT_EQ(t1.data_ptr(), t2.data_ptr());
  EXPECT_EQ(ws.allocations(), 5);
  EXPECT_FLOAT_EQ(ws.thresholds({0.5, 0.8}, at::kCPU)[0].item<float>(), 0.5f);
  EXPECT_EQ(ws.allocations(), 6);
  EXPECT_EQ(ws.bytes(), 5 * 8 * 4 + 4 + 2 * 4);
}
