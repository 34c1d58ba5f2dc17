#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <fstream>

#include "core/error.h"
#include "video/tensor.h"
#include "video/transforms.h"
#include "video_fixtures.h"

using namespace xattn::video;
using namespace xattn::video::testing;

TEST(VideoTensor, FramesBecomeTensorsWithoutCopy) {
  Frames f = numbered_clip(20, 12, 3, 5);
  std::vector<uint8_t> copy(f.rgb.begin(), f.rgb.end());
  const uint8_t* data = f.rgb.data();
  at::Tensor t = to_tensor(std::move(f));
  EXPECT_EQ(t.sizes(), (at::IntArrayRef{3, 12, 20, 3}));
  EXPECT_EQ(t.data_ptr<uint8_t>(), data);
  EXPECT_EQ(0, std::memcmp(t.data_ptr<uint8_t>(), copy.data(), copy.size()));
  EXPECT_EQ(read_frame_number(t[2].contiguous().data_ptr<uint8_t>(), 20, 12), 7);
}

TEST(VideoTensor, FloatChwAndUint8HwcConvert) {
  at::Tensor hwc = at::randint(0, 256, {2, 5, 7, 3}, at::kByte);
  Frames a = frames_from_tensor(hwc);
  EXPECT_EQ(a.count, 2);
  EXPECT_EQ(a.height, 5);
  EXPECT_EQ(a.width, 7);
  EXPECT_EQ(0, std::memcmp(a.rgb.data(), hwc.data_ptr<uint8_t>(), a.rgb.size()));
  at::Tensor chw = to_float_chw(hwc);  // [2, 3, 5, 7] in [0, 1]
  EXPECT_EQ(chw.sizes(), (at::IntArrayRef{2, 3, 5, 7}));
  EXPECT_NEAR(chw[1][2][4][6].item<float>(), hwc[1][4][6][2].item<uint8_t>() / 255.0f, 1e-6);
  Frames b = frames_from_tensor(chw);
  EXPECT_EQ(a.rgb, b.rgb);
  EXPECT_THROW(frames_from_tensor(at::zeros({2, 5, 7, 4}, at::kByte)), xattn::Error);
  EXPECT_THROW(frames_from_tensor(at::zeros({2, 4, 5, 7})), xattn::Error);
  EXPECT_THROW(frames_from_tensor(at::zeros({5, 7, 3}, at::kByte)), xattn::Error);
}

TEST(VideoTransforms, SmartResizeMatchesQwen2VL) {
  int64_t budget = qwen2vl_video_max_pixels(64);
  EXPECT_EQ(budget, 768 * 28 * 28);
  EXPECT_EQ(qwen2vl_video_max_pixels(768), static_cast<int64_t>(128 * 28 * 28 * 1.05));  // floor of the 1.05 rule
  EXPECT_EQ(qwen2vl_video_max_pixels(200), 192675);  // 24576*28^2/200*2 = 192675.84
  EXPECT_EQ(smart_resize(1080, 1920, 28, kQwen2VLVideoMinPixels, budget), std::make_pair(560, 1008));
  EXPECT_EQ(smart_resize(480, 640, 28, kQwen2VLVideoMinPixels, budget), std::make_pair(476, 644));
  EXPECT_EQ(smart_resize(50, 50), std::make_pair(56, 56));
  EXPECT_EQ(smart_resize(20, 30, 28, 128 * 28 * 28, 768 * 28 * 28), std::make_pair(280, 392));
  EXPECT_THROW(smart_resize(10, 2500), xattn::Error);
}

TEST(VideoTransforms, CropNormalizeAndOpenCvPaths) {
  at::Tensor f = at::arange(4 * 6 * 3, at::kInt).to(at::kByte).view({1, 4, 6, 3});
  at::Tensor c = center_crop(f, 2, 2);
  EXPECT_EQ(c.sizes(), (at::IntArrayRef{1, 2, 2, 3}));
  EXPECT_EQ(c[0][0][0][0].item<uint8_t>(), f[0][1][2][0].item<uint8_t>());
  EXPECT_THROW(center_crop(f, 5, 2), xattn::Error);
  at::Tensor x = at::full({1, 3, 2, 2}, 0.5);
  at::Tensor n = normalize(x, kClipMean, kClipStd);
  EXPECT_NEAR(n[0][1][0][0].item<float>(), (0.5 - 0.4578275) / 0.26130258, 1e-6);
  // A flat image stays flat under every method.
  at::Tensor flat = at::full({2, 30, 40, 3}, 77, at::kByte);
  for (Interp m : {Interp::kNearest, Interp::kBilinear, Interp::kBicubic, Interp::kArea})
    for (bool aa : {true, false}) {
      at::Tensor r = resize(flat, 13, 21, m, Rounding::kPil, aa);
      EXPECT_EQ(r.sizes(), (at::IntArrayRef{2, 13, 21, 3}));
      EXPECT_EQ(r.min().item<uint8_t>(), 77);
      EXPECT_EQ(r.max().item<uint8_t>(), 77);
    }
  EXPECT_THROW(resize(at::zeros({1, 4, 4, 3}), 2, 2), xattn::Error);
}

// Pillow's BICUBIC/BILINEAR resize, run at test time, against ours.
TEST(VideoTransforms, MatchesPillow) {
  // Debian's python3 (with python3-pil) may sit behind another python3 on PATH.
  std::string py;
  for (std::string cand : {"python3", "/usr/bin/python3"})
    if (run(cand + " -c 'import PIL' >/dev/null 2>&1") == 0) {
      py = cand;
      break;
    }
  if (py.empty()) GTEST_SKIP() << "python3-pil is needed for the Pillow comparison (apt-get install python3-pil)";
  std::string dir = temp_dir("pil");
  Frames img = natural_clip(173, 129, 1);
  for (int i = 0; i < 173 * 129 * 3; i += 7) img.rgb[i] = static_cast<uint8_t>((i * 31) & 255);  // sharp detail
  std::string in = dir + "/in.rgb";
  std::ofstream(in, std::ios::binary).write(reinterpret_cast<const char*>(img.rgb.data()), img.rgb.size());
  at::Tensor t = to_tensor(Frames(img));
  struct Case {
    int ow, oh;
    Interp m;
    const char* name;
  } cases[] = {{64, 48, Interp::kBicubic, "bicubic"},  {56, 84, Interp::kBicubic, "bicubic"},
               {300, 200, Interp::kBicubic, "bicubic"}, {64, 48, Interp::kBilinear, "bilinear"},
               {140, 112, Interp::kBicubic, "bicubic"}};
  for (auto& c : cases) {
    std::string out = dir + "/out.rgb";
    std::string cmd = py + " '" XATTN_SOURCE_DIR "/tests/video/pil_resize.py' '" + in + "' 173 129 " +
                      std::to_string(c.ow) + " " + std::to_string(c.oh) + " " + c.name + " '" + out + "'";
    ASSERT_EQ(0, run(cmd)) << cmd;
    std::ifstream f(out, std::ios::binary);
    std::vector<uint8_t> pil((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    ASSERT_EQ(pil.size(), size_t(c.ow) * c.oh * 3);
    at::Tensor ours = resize(t, c.oh, c.ow, c.m, Rounding::kPil).contiguous();
    at::Tensor flt = resize(t, c.oh, c.ow, c.m, Rounding::kFloat).contiguous();
    at::Tensor ref = at::from_blob(pil.data(), {1, c.oh, c.ow, 3}, at::kByte).to(at::kInt);
    int pil_max = (ours.to(at::kInt) - ref).abs().max().item<int>();
    int flt_max = (flt.to(at::kInt) - ref).abs().max().item<int>();
    double flt_mean = (flt.to(at::kInt) - ref).abs().to(at::kFloat).mean().item<double>();
    std::printf("resize %dx%d %s: kPil max |diff| %d, kFloat max %d mean %.4f (vs Pillow)\n", c.ow, c.oh, c.name,
                pil_max, flt_max, flt_mean);
    EXPECT_EQ(pil_max, 0) << c.name << " " << c.ow << "x" << c.oh;
    // Float passes round once; Pillow rounds and clips between passes. Downscaling stays within
    // 1 level; upscaling can differ more where bicubic overshoot is clipped mid-way.
    if (c.ow < 173 && c.oh < 129) {
      EXPECT_LE(flt_max, 1);
    }
    EXPECT_LT(flt_mean, 0.3);
  }
}
