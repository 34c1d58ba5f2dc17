// HunyuanVideo transformer on CPU with tiny random weights: shapes, how text padding is handled,
// the attention hook, and config errors. Parity with an independent reference: test_hunyuan_parity.cpp.
#include <gtest/gtest.h>

#include "core/error.h"
#include "pipelines/hunyuan/transformer.h"

using xattn::hunyuan::Transformer;
using xattn::hunyuan::TransformerConfig;
using xattn::hunyuan::TransformerInputs;
using xattn::pipelines::LayerId;

namespace {

TransformerConfig tiny() {
  TransformerConfig c;
  c.num_heads = 2;
  c.head_dim = 16;
  c.num_layers = 2;
  c.num_single_layers = 2;
  c.num_refiner_layers = 1;
  c.text_embed_dim = 24;
  c.pooled_projection_dim = 12;
  c.rope_axes_dim = {4, 6, 6};
  return c;
}

TransformerInputs inputs(int64_t B, int64_t Lt) {
  TransformerInputs in;
  in.latents = at::randn({B, 16, 3, 4, 6});
  in.timestep = at::full({B}, 937.5);
  in.text_states = at::randn({B, Lt, 24});
  in.text_mask = at::ones({B, Lt}, at::kLong);
  in.pooled = at::randn({B, 12});
  in.guidance = at::full({B}, 6000.0);
  return in;
}

double rel(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>() / b.abs().max().item<double>();
}

}  // namespace

TEST(HunyuanTransformer, OutputHasTheLatentShapeAndDependsOnEveryInput) {
  at::manual_seed(1);
  const Transformer dit = Transformer::random(tiny(), {}, 5);
  const TransformerInputs in = inputs(2, 7);
  const at::Tensor v = dit.forward(in);
  EXPECT_EQ(v.sizes(), in.latents.sizes());
  EXPECT_TRUE(v.isfinite().all().item<bool>());
  auto changed = [&](TransformerInputs other) { return rel(dit.forward(other), v) > 1e-4; };
  TransformerInputs t = in;
  t.timestep = at::full({2}, 500.0);
  EXPECT_TRUE(changed(t));
  TransformerInputs g = in;
  g.guidance = at::full({2}, 3000.0);
  EXPECT_TRUE(changed(g));
  TransformerInputs p = in;
  p.pooled = at::randn({2, 12});
  EXPECT_TRUE(changed(p));
  TransformerInputs s = in;
  s.text_states = at::randn({2, 7, 24});
  EXPECT_TRUE(changed(s));
}

// Padded text positions never reach the video: a prompt padded to 9 tokens gives the same velocity
// as the same prompt alone, and in a batch with a longer prompt (key masking) as well.
TEST(HunyuanTransformer, TextPaddingIsExcluded) {
  at::manual_seed(2);
  const Transformer dit = Transformer::random(tiny(), {}, 6);
  TransformerInputs a = inputs(1, 5);
  const at::Tensor alone = dit.forward(a);
  TransformerInputs padded = a;
  padded.text_states = at::cat({a.text_states, at::randn({1, 4, 24})}, 1);
  padded.text_mask = at::cat({a.text_mask, at::zeros({1, 4}, at::kLong)}, 1);
  EXPECT_LT(rel(dit.forward(padded), alone), 1e-5);
  TransformerInputs batch = inputs(2, 9);
  batch.latents[0].copy_(a.latents[0]);
  batch.pooled[0].copy_(a.pooled[0]);
  batch.text_states[0].copy_(padded.text_states[0]);
  batch.text_mask[0].copy_(padded.text_mask[0]);
  batch.text_mask[1].narrow(0, 8, 1).fill_(0);  // the other prompt has 8 valid tokens
  EXPECT_LT(rel(dit.forward(batch)[0], alone[0]), 1e-5);
}

TEST(HunyuanTransformer, EveryBlockCallsTheAttentionHook) {
  const Transformer dit = Transformer::random(tiny(), {}, 7);
  std::vector<std::string> seen;
  const auto hook = [&](const LayerId& id, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                        const xattn::attention::AttentionOptions& o) {
    seen.push_back(id.name());
    EXPECT_EQ(q.size(1), 3 * 2 * 3 + 7);  // video tokens (3 x 2 x 3 patches) + text
    EXPECT_FALSE(o.causal);
    return xattn::attention::dense_attention(q, k, v, o).out;
  };
  const TransformerInputs in = inputs(1, 7);
  const at::Tensor with_hook = dit.forward(in, hook);
  EXPECT_EQ(seen, (std::vector<std::string>{"dual:0", "dual:1", "single:0", "single:1"}));
  EXPECT_TRUE(at::equal(with_hook, dit.forward(in)));
}

TEST(HunyuanTransformer, ConfigAndInputErrorsSayWhat) {
  const auto msg = [](const std::string& json) {
    try {
      TransformerConfig::from_json(json, "t.json");
    } catch (const xattn::Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(msg(R"({"rope_axes_dim":[16,56,50]})").find("summing to attention_head_dim 128"), std::string::npos);
  EXPECT_NE(msg(R"({"qk_norm":"layer_norm"})").find("qk_norm"), std::string::npos);
  EXPECT_NE(msg(R"({"num_layers":"x"})").find("t.json: num_layers: expected an integer"), std::string::npos);
  const TransformerConfig published = TransformerConfig::from_json(R"({"_class_name":"HunyuanVideoTransformer3DModel",
    "attention_head_dim":128,"guidance_embeds":true,"in_channels":16,"mlp_ratio":4.0,"num_attention_heads":24,
    "num_layers":20,"num_refiner_layers":2,"num_single_layers":40,"out_channels":16,"patch_size":2,"patch_size_t":1,
    "pooled_projection_dim":768,"qk_norm":"rms_norm","rope_axes_dim":[16,56,56],"rope_theta":256.0,"text_embed_dim":4096})");
  EXPECT_EQ(published.inner_dim(), 3072);
  const Transformer dit = Transformer::random(tiny(), {}, 8);
  TransformerInputs in = inputs(1, 3);
  in.latents = at::randn({1, 16, 3, 5, 6});  // H not a multiple of the patch
  EXPECT_THROW(dit.forward(in), xattn::Error);
  in = inputs(1, 3);
  in.guidance = at::Tensor();
  EXPECT_THROW(dit.forward(in), xattn::Error);
}
