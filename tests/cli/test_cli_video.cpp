// `xattn probe-video` and `xattn bench video` through the real binary.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli_run.h"

namespace fs = std::filesystem;

namespace {
std::string make_clip() {
  fs::path dir = fs::path(XATTN_TEST_TMPDIR) / "cli_video";
  fs::create_directories(dir);
  std::string path = (dir / "clip.mp4").string();
  if (!fs::exists(path)) {
    std::string cmd = "ffmpeg -hide_banner -loglevel error -y -f lavfi -i testsrc=size=96x64:rate=10 -frames:v 20 "
                      "-c:v libx264 -pix_fmt yuv420p '" + path + "'";
    EXPECT_EQ(0, std::system(cmd.c_str()));
  }
  return path;
}
}  // namespace

TEST(CliVideo, ProbeReportsMetadataAndSampling) {
  if (std::system("ffmpeg -version >/dev/null 2>&1") != 0) GTEST_SKIP() << "needs the ffmpeg CLI";
  std::string clip = make_clip();
  Result r = run("probe-video '" + clip + "' --sample uniform:4 --json");
  ASSERT_EQ(r.code, 0) << r.all;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["codec"], "h264");
  EXPECT_EQ(j["width"], 96);
  EXPECT_EQ(j["height"], 64);
  EXPECT_EQ(j["frame_count"], 20);
  EXPECT_EQ(j["frame_count_exact"], true);
  EXPECT_DOUBLE_EQ(j["avg_fps"].get<double>(), 10.0);
  EXPECT_EQ(j["sample"]["indices"], nlohmann::json({0, 6, 13, 19}));
  EXPECT_NEAR(j["sample"]["times_s"][2].get<double>(), 1.3, 1e-9);

  Result text = run("probe-video '" + clip + "' --sample uniform-interior:3");
  ASSERT_EQ(text.code, 0);
  EXPECT_NE(text.out.find("uniform-interior:3 -> 3 frames"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("96x64"), std::string::npos);

  fs::path dump = fs::path(XATTN_TEST_TMPDIR) / "cli_video" / "dump";
  fs::remove_all(dump);
  Result d = run("probe-video '" + clip + "' --sample indices:1,2 --dump '" + dump.string() + "'");
  ASSERT_EQ(d.code, 0) << d.all;
  EXPECT_TRUE(fs::exists(dump / "frame_00000.png"));
  EXPECT_TRUE(fs::exists(dump / "frame_00001.png"));
  EXPECT_FALSE(fs::exists(dump / "frame_00002.png"));
  EXPECT_TRUE(fs::exists(dump / "contact_sheet.png"));
}

TEST(CliVideo, ProbeErrorsAndUsage) {
  Result missing = run("probe-video /nonexistent/clip.mp4");
  EXPECT_EQ(missing.code, 1);
  EXPECT_NE(missing.all.find("/nonexistent/clip.mp4: no such file"), std::string::npos) << missing.all;
  Result bad = run("probe-video x.mp4 --sample uniform:zero");
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.all.find("expected an integer"), std::string::npos) << bad.all;
  Result help = run("probe-video --help");
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.out.find("qwen2vl"), std::string::npos);
}

TEST(CliVideo, BenchVideoSamplesIdenticalFrames) {
  Result r = run("bench video --minutes 0.25 --height 144 --sample uniform:8 -o json");
  ASSERT_EQ(r.code, 0) << r.all;
  auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["identical"], "yes");
  EXPECT_EQ(j[0]["frames"], 360);
  EXPECT_EQ(j[0]["sampled"], 8);
  EXPECT_EQ(j[0]["full_decoded"], 360);
  EXPECT_LT(j[0]["sparse_decoded"].get<int>(), 360);
}
