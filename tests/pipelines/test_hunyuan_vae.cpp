// HunyuanVideo VAE decoder on CPU with tiny random weights: output geometry, when the temporal and
// spatial tilings apply, and config errors. Parity with an independent reference:
// test_hunyuan_parity.cpp.
#include <gtest/gtest.h>

#include "core/error.h"
#include "pipelines/hunyuan/vae.h"

using xattn::hunyuan::VaeConfig;
using xattn::hunyuan::VaeDecoder;
using xattn::hunyuan::VaeTiling;

namespace {
VaeConfig tiny() {
  VaeConfig c;
  c.latent_channels = 4;
  c.block_out_channels = {8, 8, 16, 16};
  c.layers_per_block = 1;
  c.norm_num_groups = 4;
  return c;
}
}  // namespace

TEST(HunyuanVae, DecodesToFourTimesTheFramesAndEightTimesTheSize) {
  const VaeDecoder vae = VaeDecoder::random(tiny(), {}, 3);
  const at::Tensor z = at::randn({1, 4, 3, 4, 5});
  const at::Tensor x = vae.decode(z);
  EXPECT_EQ(x.sizes(), at::IntArrayRef({1, 3, 9, 32, 40}));
  EXPECT_TRUE(x.isfinite().all().item<bool>());
  // Three latent frames are below the temporal window (4): no tiling, the same as one window.
  EXPECT_TRUE(at::allclose(x, vae.decode_window(z / tiny().scaling_factor), 1e-5, 1e-5));
}

TEST(HunyuanVae, TiledDecodesKeepTheGeometryAndReportProgress) {
  const VaeDecoder vae = VaeDecoder::random(tiny(), {}, 4);
  const at::Tensor z = at::randn({1, 4, 9, 6, 7});
  int64_t last_total = 0, last_done = 0;
  const auto cb = [&](const xattn::ProgressEvent& e) {
    last_total = e.total;
    last_done = e.done;
    return true;
  };
  const at::Tensor t = vae.decode(z, {}, cb);  // windows at latent frames 0, 3, 6
  EXPECT_EQ(t.sizes(), at::IntArrayRef({1, 3, 33, 48, 56}));
  EXPECT_EQ(last_total, 3);
  EXPECT_EQ(last_done, 3);
  VaeTiling s;
  s.spatial = true;
  s.tile_sample_min_size = 32;  // 4 latent pixels, stride 3
  s.tile_sample_stride = 24;
  const at::Tensor st = vae.decode(z, s, cb);
  EXPECT_EQ(st.sizes(), at::IntArrayRef({1, 3, 33, 48, 56}));
  EXPECT_EQ(last_total, 3 * 2 * 3);
  // The first window's first frame sees only latent frame 0 through causal convolutions, but the
  // GroupNorm statistics span the window: tiling changes values, not the first frame's geometry.
  EXPECT_FALSE(at::allclose(t, vae.decode_window(z / tiny().scaling_factor).narrow(2, 0, 33), 1e-3, 1e-3));
  VaeTiling bad;
  bad.tile_sample_stride = 100;  // not a multiple of 8
  EXPECT_THROW(vae.decode(z, bad), xattn::Error);
  const auto cancel = [](const xattn::ProgressEvent&) { return false; };
  EXPECT_THROW(vae.decode(z, {}, cancel), xattn::Cancelled);
}

TEST(HunyuanVae, ConfigErrorsSayWhat) {
  VaeConfig c = tiny();
  c.norm_num_groups = 3;
  EXPECT_NE(c.check().find("norm_num_groups"), std::string::npos);
  c = tiny();
  c.block_out_channels = {8, 8};
  EXPECT_NE(c.check().find("too few"), std::string::npos);
  const VaeConfig published = VaeConfig::from_json(R"({"_class_name":"AutoencoderKLHunyuanVideo","act_fn":"silu",
    "block_out_channels":[128,256,512,512],"in_channels":3,"latent_channels":16,"layers_per_block":2,
    "mid_block_add_attention":true,"norm_num_groups":32,"out_channels":3,"scaling_factor":0.476986,
    "spatial_compression_ratio":8,"temporal_compression_ratio":4})");
  EXPECT_EQ(published.block_out_channels.back(), 512);
  EXPECT_THROW(VaeConfig::from_json(R"({"act_fn":"relu"})"), xattn::Error);
}
