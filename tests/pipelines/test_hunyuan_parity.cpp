// HunyuanVideo transformer, VAE decode and one Euler step against an independent PyTorch
// implementation of the published architecture (tests/fixtures/make_hunyuan_fixtures.py, run on
// the GPU host; tiny random fp32 weights saved in the diffusers layout, norm weights included).
// The reference masks padded text the way diffusers does; ours drops it, so a padded second
// prompt also checks that shortcut.
#include <gtest/gtest.h>

#include "model_fixtures.h"
#include "pipelines/flow_match.h"
#include "pipelines/hunyuan/transformer.h"
#include "pipelines/hunyuan/vae.h"

using xattn::test::model_fixture;
using xattn::test::rel_err;

namespace {
std::map<std::string, at::Tensor> expected() {
  return xattn::safetensors::load(model_fixture("hunyuan_tiny") + "/expected.safetensors");
}
}  // namespace

TEST(HunyuanParity, TransformerAndEulerStepMatchTheReference) {
  const auto e = expected();
  const auto dit = xattn::hunyuan::Transformer::load(model_fixture("hunyuan_tiny") + "/transformer");
  xattn::hunyuan::TransformerInputs in{e.at("latents"), e.at("timestep"), e.at("text_states"),
                                       e.at("text_mask"), e.at("pooled"), e.at("guidance")};
  const at::Tensor v = dit.forward(in);
  EXPECT_LE(rel_err(v, e.at("velocity")), 1e-4);
  RecordProperty("velocity_rel_err", std::to_string(rel_err(v, e.at("velocity"))));
  const xattn::pipelines::FlowMatchEuler sched(4, 7.0);
  const at::Tensor sig = e.at("sigmas");
  for (int i = 0; i <= 4; ++i) EXPECT_EQ(sched.sigmas()[static_cast<size_t>(i)], sig[i].item<float>()) << i;
  EXPECT_LE(rel_err(sched.step(v, 1, e.at("latents")), e.at("stepped")), 1e-4);
}

TEST(HunyuanParity, VaeDecodeMatchesTheReference) {
  const auto e = expected();
  const auto vae = xattn::hunyuan::VaeDecoder::load(model_fixture("hunyuan_tiny") + "/vae");
  EXPECT_LE(rel_err(vae.decode(e.at("vae_latents")), e.at("video")), 1e-4);  // two temporal windows
  xattn::hunyuan::VaeTiling t;
  t.spatial = true;
  t.tile_sample_min_size = 32;
  t.tile_sample_stride = 24;
  EXPECT_LE(rel_err(vae.decode(e.at("vae_latents"), t), e.at("video_spatial")), 1e-4);
}
