// Attention policy (YAML, layer selectors, per-step specs, PolicyAttention) and the flow-matching
// sampler.
#include <gtest/gtest.h>

#include "core/config/config.h"
#include "core/error.h"
#include "pipelines/attention_policy.h"
#include "pipelines/flow_match.h"

using xattn::pipelines::AttentionPolicy;
using xattn::pipelines::FlowMatchEuler;
using xattn::pipelines::LayerId;
using xattn::pipelines::LayerSelector;
using xattn::pipelines::PolicyAttention;

namespace {
LayerId dual(int i) { return {LayerId::Stream::kDual, i}; }
LayerId single(int i) { return {LayerId::Stream::kSingle, i}; }
}  // namespace

TEST(FlowMatchEuler, ShiftedSigmasAndEulerSteps) {
  const FlowMatchEuler s(4, 7.0);
  ASSERT_EQ(s.steps(), 4);
  ASSERT_EQ(s.sigmas().size(), 5u);
  // sigma = 7 u / (1 + 6 u) for u = 1, 0.75, 0.5, 0.25, then 0.
  const double u[] = {1.0, 0.75, 0.5, 0.25};
  for (int i = 0; i < 4; ++i) {
    EXPECT_NEAR(s.sigma(i), 7 * u[i] / (1 + 6 * u[i]), 1e-6);
    EXPECT_NEAR(s.timestep(i), 1000 * s.sigma(i), 1e-3);
  }
  EXPECT_EQ(s.sigma(4), 0.0f);
  EXPECT_EQ(s.sigma(0), 1.0f);
  const at::Tensor x = at::randn({2, 3}), v = at::randn({2, 3});
  const at::Tensor next = s.step(v, 1, x);
  EXPECT_TRUE(at::allclose(next, x + (s.sigma(2) - s.sigma(1)) * v, 1e-6, 1e-6));
  EXPECT_EQ(s.step(v.to(at::kBFloat16), 0, x).scalar_type(), at::kBFloat16);  // the model's dtype
  EXPECT_THROW(s.step(v, 4, x), xattn::Error);
  EXPECT_THROW(FlowMatchEuler(0, 7.0), xattn::Error);
}

TEST(AttentionPolicy, SelectorsParseAndMatch) {
  EXPECT_TRUE(LayerSelector::parse("all").matches(single(39)));
  EXPECT_TRUE(LayerSelector::parse("dual").matches(dual(19)));
  EXPECT_FALSE(LayerSelector::parse("dual").matches(single(0)));
  EXPECT_TRUE(LayerSelector::parse("single:3-5").matches(single(5)));
  EXPECT_FALSE(LayerSelector::parse("single:3-5").matches(single(6)));
  EXPECT_TRUE(LayerSelector::parse("dual:7").matches(dual(7)));
  EXPECT_FALSE(LayerSelector::parse("dual:7").matches(dual(8)));
  for (const char* bad : {"double:1", "dual:", "dual:x", "single:5-3", "dual:1-", "single:-2", "dual:3x"})
    EXPECT_THROW(LayerSelector::parse(bad), xattn::Error) << bad;
}

TEST(AttentionPolicy, StepsAndLayersGetTheirSpec) {
  const AttentionPolicy p = xattn::config::parse<AttentionPolicy>(R"(
warmup_steps: 2
xattention: {stride: 8, threshold: 0.9}
dense_layers: [dual:0]
layers:
  - {layers: single, threshold: 0.95}
  - {layers: single:3-4, head_thresholds: [0.8, 0.85]}
  - {layers: dual:5, dense: true}
dense_final_step: true
)", "policy.yaml");
  EXPECT_EQ(p.spec(1, 10, dual(3)).mode, "dense");  // warm-up
  EXPECT_EQ(p.spec(2, 10, dual(3)).mode, "xattention");
  EXPECT_EQ(p.spec(2, 10, dual(3)).xattention.threshold, 0.9);
  EXPECT_EQ(p.spec(2, 10, dual(0)).mode, "dense");  // dense layer
  EXPECT_EQ(p.spec(2, 10, dual(5)).mode, "dense");
  EXPECT_EQ(p.spec(2, 10, single(0)).xattention.threshold, 0.95);
  EXPECT_EQ(p.spec(2, 10, single(4)).xattention.head_thresholds, (std::vector<double>{0.8, 0.85}));
  EXPECT_EQ(p.spec(9, 10, single(0)).mode, "dense");  // final step
  AttentionPolicy d = p;
  d.mode = "dense";
  EXPECT_EQ(d.spec(5, 10, single(1)).mode, "dense");
}

TEST(AttentionPolicy, BadPoliciesNameTheKey) {
  auto msg = [](const std::string& yaml) {
    try {
      xattn::config::parse<AttentionPolicy>(yaml, "p.yaml");
    } catch (const xattn::Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(msg("warmup: 3\n").find("warmup"), std::string::npos);
  EXPECT_NE(msg("dense_layers: [triple:1]\n").find("triple:1"), std::string::npos);
  EXPECT_NE(msg("layers: [{layers: dual:x}]\n").find("dual:x"), std::string::npos);
  EXPECT_NE(msg("mask_reuse: 0\n").find("mask_reuse"), std::string::npos);
  EXPECT_NE(msg("xattention: {stride: 5}\n").find("stride"), std::string::npos);
}

// PolicyAttention: dense during warm-up (equal to dense attention), sparse afterwards with its
// density recorded, masks re-estimated only every mask_reuse-th sparse step.
TEST(AttentionPolicy, PolicyAttentionRecordsAndReusesMasks) {
  at::manual_seed(3);
  AttentionPolicy p;
  p.warmup_steps = 1;
  p.mask_reuse = 2;
  p.xattention.block_size = 64;
  p.xattention.selection = "top_ratio";
  p.xattention.top_ratio = 0.5;
  PolicyAttention run(p, 4, /*time_calls=*/true);
  const at::Tensor q = at::randn({1, 256, 2, 32}), k = at::randn({1, 256, 2, 32}), v = at::randn({1, 256, 2, 32});
  xattn::attention::AttentionOptions o;
  run.begin_step(0);
  EXPECT_TRUE(at::allclose(run(dual(0), q, k, v, o), xattn::attention::dense_attention(q, k, v, o).out, 1e-5, 1e-5));
  run.begin_step(1);
  const at::Tensor s1 = run(dual(0), q, k, v, o);
  run.begin_step(2);  // reuses step 1's mask even for different inputs
  const at::Tensor q2 = at::randn({1, 256, 2, 32});
  const at::Tensor s2 = run(dual(0), q2, k, v, o);
  const auto mask1 = xattn::attention::estimate(q, k, p.xattention, o);
  EXPECT_TRUE(at::allclose(s2, xattn::attention::block_sparse_attention(q2, k, v, mask1, o).out, 1e-5, 1e-5));
  ASSERT_EQ(run.stats().size(), 3u);
  EXPECT_TRUE(run.stats()[0].dense);
  EXPECT_FALSE(run.stats()[1].dense);
  EXPECT_NEAR(run.stats()[1].density, 0.5, 1e-9);
  EXPECT_EQ(run.stats()[2].layer, "dual:0");
  EXPECT_NEAR(run.mean_sparse_density(), 0.5, 1e-9);
  EXPECT_GT(run.attention_ms(), 0.0);
}

TEST(AttentionPolicy, ShippedPoliciesLoad) {
  const std::string dir = std::string(XATTN_SOURCE_DIR) + "/configs/policy/";
  const auto base = xattn::config::load<AttentionPolicy>(dir + "hunyuan-xattention.yaml");
  EXPECT_EQ(base.warmup_steps, 5);
  EXPECT_EQ(base.spec(5, 50, dual(0)).xattention.threshold, 0.9);
  const auto hq = xattn::config::load<AttentionPolicy>(dir + "hunyuan-xattention-hq.yaml");
  EXPECT_EQ(hq.spec(10, 50, dual(1)).mode, "dense");
  EXPECT_EQ(hq.spec(10, 50, dual(2)).xattention.threshold, 0.95);
  EXPECT_EQ(hq.spec(49, 50, single(3)).mode, "dense");
  EXPECT_EQ(xattn::config::load<AttentionPolicy>(dir + "hunyuan-top-ratio-35.yaml").xattention.top_ratio, 0.35);
  EXPECT_EQ(xattn::config::load<AttentionPolicy>(dir + "dense.yaml").spec(30, 50, single(0)).mode, "dense");
  // The attention specs under configs/attention are policies too (mode + xattention).
  EXPECT_EQ(xattn::config::load<AttentionPolicy>(std::string(XATTN_SOURCE_DIR) + "/configs/attention/xattention-video.yaml")
                .xattention.threshold,
            0.9);
}
