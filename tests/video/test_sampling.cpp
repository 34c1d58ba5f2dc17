#include <gtest/gtest.h>

#include "core/error.h"
#include "video/sampling.h"

using namespace xattn::video;

namespace {
Timeline cfr(int64_t n, double fps) {
  Timeline t;
  t.avg_fps = fps;
  for (int64_t i = 0; i < n; ++i) t.times.push_back(double(i) / fps);
  return t;
}
std::vector<int64_t> pick(const std::string& spec, const Timeline& t) {
  return sample_indices(SamplingSpec::parse(spec), t);
}
}  // namespace

TEST(Sampling, ParsesEveryFormAndRoundTrips) {
  for (std::string s : {"all", "indices:0,5,2", "times:0.5,1.25", "uniform:64", "uniform-interior:8", "fps:1",
                        "qwen2vl:fps=2,min=4,max=768"})
    EXPECT_EQ(SamplingSpec::parse(s).str(), s);
  auto q = SamplingSpec::parse("qwen2vl:fps=1,max=32");
  EXPECT_EQ(q.method, SampleMethod::kQwen2VL);
  EXPECT_DOUBLE_EQ(q.fps, 1.0);
  EXPECT_EQ(q.min_frames, 4);
  EXPECT_EQ(q.max_frames, 32);
}

TEST(Sampling, BadSpecsNameTheProblem) {
  auto msg = [](const std::string& s) {
    try {
      SamplingSpec::parse(s);
    } catch (const xattn::UsageError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(msg("uniform").find("needs a value"), std::string::npos);
  EXPECT_NE(msg("uniform:0").find("N >= 1"), std::string::npos);
  EXPECT_NE(msg("uniform:x").find("expected an integer"), std::string::npos);
  EXPECT_NE(msg("fps:-1").find("fps must be > 0"), std::string::npos);
  EXPECT_NE(msg("qwen2vl:speed=3").find("unknown qwen2vl option 'speed'"), std::string::npos);
  EXPECT_NE(msg("random:3").find("unknown method 'random'"), std::string::npos);
  EXPECT_NE(msg("indices:1,-2").find(">= 0"), std::string::npos);
}

TEST(Sampling, UniformConventions) {
  Timeline t = cfr(10, 30);
  EXPECT_EQ(pick("uniform:4", t), (std::vector<int64_t>{0, 3, 6, 9}));
  EXPECT_EQ(pick("uniform-interior:4", t), (std::vector<int64_t>{2, 4, 6, 8}));
  // round-half-to-even like numpy/torch: linspace(0, 3, 3) = 0, 1.5, 3 -> 0, 2, 3
  EXPECT_EQ(pick("uniform:3", cfr(4, 30)), (std::vector<int64_t>{0, 2, 3}));
  // More frames than the video: indices repeat.
  EXPECT_EQ(pick("uniform:5", cfr(2, 30)), (std::vector<int64_t>{0, 0, 0, 1, 1}));
  EXPECT_EQ(pick("uniform:1", t), (std::vector<int64_t>{0}));
}

TEST(Sampling, FixedFpsFollowsTimestamps) {
  // CFR: equals VideoMME's int(i * video_fps / fps).
  Timeline t = cfr(95, 30);
  auto idx = pick("fps:1", t);
  EXPECT_EQ(idx, (std::vector<int64_t>{0, 30, 60, 90}));
  auto idx2 = pick("fps:7", cfr(30, 25));
  for (size_t i = 0; i < idx2.size(); ++i) EXPECT_EQ(idx2[i], int64_t(i * 25 / 7)) << i;
  // VFR: the frame on screen at each time.
  Timeline v;
  v.avg_fps = 4;
  v.times = {0.0, 0.1, 0.5, 0.55, 1.2};
  // t = 0, .25, .5, .75, 1.0, 1.25 (duration 1.2 + 1/4)
  EXPECT_EQ(pick("fps:4", v), (std::vector<int64_t>{0, 1, 2, 3, 3, 4}));
}

TEST(Sampling, TimesPickTheFrameOnScreen) {
  Timeline v;
  v.avg_fps = 4;
  v.times = {0.0, 0.1, 0.5, 0.55, 1.2};
  EXPECT_EQ(pick("times:0,0.09,0.1,0.52,0.9,1.3", v), (std::vector<int64_t>{0, 0, 1, 2, 3, 4}));
  EXPECT_THROW(pick("times:5", v), xattn::Error);
}

TEST(Sampling, Qwen2VLFrameCount) {
  // 10 s at 30 fps, 2 fps -> 20 frames
  EXPECT_EQ(qwen2vl_frame_count(300, 30, 2, 4, 768), 20);
  // Very short: clamped up to min_frames (4)
  EXPECT_EQ(qwen2vl_frame_count(10, 30, 2, 4, 768), 4);
  // Long: clamped to max_frames (768)
  EXPECT_EQ(qwen2vl_frame_count(90000, 25, 2, 4, 768), 768);
  // Odd results floor to even: 7.5 s at 2 fps = 15 -> 14
  EXPECT_EQ(qwen2vl_frame_count(225, 30, 2, 4, 768), 14);
  // min rounds up to even, max down to even and to the frame count
  EXPECT_EQ(qwen2vl_frame_count(30, 30, 2, 5, 768), 6);
  EXPECT_EQ(qwen2vl_frame_count(7, 1, 2, 4, 768), 6);
  EXPECT_THROW(qwen2vl_frame_count(1, 30, 2, 4, 768), xattn::Error);
  auto idx = pick("qwen2vl", cfr(300, 30));
  ASSERT_EQ(idx.size(), 20u);
  EXPECT_EQ(idx.front(), 0);
  EXPECT_EQ(idx.back(), 299);
  EXPECT_EQ(idx[1], 16);  // round(299/19) = round(15.74)
}

TEST(Sampling, ExplicitIndicesAreChecked) {
  Timeline t = cfr(10, 30);
  EXPECT_EQ(pick("indices:9,0,9", t), (std::vector<int64_t>{9, 0, 9}));
  try {
    pick("indices:10", t);
    FAIL();
  } catch (const xattn::Error& e) {
    EXPECT_NE(std::string(e.what()).find("out of range [0, 10)"), std::string::npos);
  }
  EXPECT_THROW(pick("all", Timeline{}), xattn::Error);
}
