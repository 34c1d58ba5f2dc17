// Decoding, sampling, encoding and error handling against files made at test time by the
// ffmpeg CLI and by our writer. Frame content is checked through frame numbers drawn into
// the frames, and pixels against ffmpeg's own decode.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <filesystem>
#include <fstream>
#include <random>

#include "core/error.h"
#include "video/reader.h"
#include "video/rgb_ops.h"
#include "video/writer.h"
#include "video_fixtures.h"

using namespace xattn::video;
using namespace xattn::video::testing;
namespace fs = std::filesystem;

namespace {

#define REQUIRE_FFMPEG() \
  if (!have_ffmpeg()) GTEST_SKIP() << "the ffmpeg CLI is needed to make fixtures (apt-get install ffmpeg)"

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const xattn::Error& e) {
    return e.what();
  }
  return "no error";
}

double mean_abs_diff(const Frames& a, const Frames& b) {
  EXPECT_EQ(a.rgb.size(), b.rgb.size());
  double s = 0;
  size_t n = std::min(a.rgb.size(), b.rgb.size());
  for (size_t i = 0; i < n; ++i) s += std::abs(int(a.rgb[i]) - int(b.rgb[i]));
  return n ? s / double(n) : 1e9;
}

void expect_numbers(const Frames& f, const std::vector<int64_t>& expected, const std::string& what) {
  ASSERT_EQ(f.count, static_cast<int64_t>(expected.size())) << what;
  for (int64_t i = 0; i < f.count; ++i)
    EXPECT_EQ(read_frame_number(f.frame(i), f.width, f.height), expected[i]) << what << " slot " << i;
}

struct Format {
  std::string name, ext, args, codec;
  int w, h;
};
void PrintTo(const Format& f, std::ostream* os) { *os << f.name; }

}  // namespace

class Formats : public ::testing::TestWithParam<Format> {};

TEST_P(Formats, DecodesEveryFrameAndSeeksToAny) {
  REQUIRE_FFMPEG();
  const Format& f = GetParam();
  std::string dir = temp_dir("fmt_" + f.name);
  std::string path = dir + "/clip." + f.ext;
  const int64_t n = 40;
  Frames src = numbered_clip(f.w, f.h, n);
  std::string log;
  ASSERT_TRUE(ffmpeg_encode(src, 10, f.args, path, &log)) << log;

  VideoReader r(path);
  EXPECT_EQ(r.info().codec, f.codec);
  EXPECT_EQ(r.info().width, f.w);
  EXPECT_EQ(r.info().height, f.h);
  EXPECT_NEAR(r.info().avg_fps, 10.0, 1e-6);
  EXPECT_EQ(r.timeline().size(), n);
  EXPECT_TRUE(r.info().frame_count_exact);
  EXPECT_EQ(r.info().frame_count, n);
  EXPECT_NEAR(r.timeline().times[7], 0.7, 1e-3);

  Frames all = r.read_all();
  std::vector<int64_t> every(n);
  for (int64_t i = 0; i < n; ++i) every[i] = i;
  expect_numbers(all, every, f.name + " all");
  // Pixels agree with ffmpeg's own decode (colour conversion, no shifts).
  Frames ref = ffmpeg_decode(path, f.w, f.h);
  EXPECT_LT(mean_abs_diff(all, ref), 2.0) << f.name;

  std::vector<int64_t> scattered = {37, 3, 3, 20, 0, 39, 21};
  Frames some = r.read(scattered);
  expect_numbers(some, scattered, f.name + " scattered");
  for (size_t i = 0; i < scattered.size(); ++i) {
    EXPECT_EQ(some.indices[i], scattered[i]);
    EXPECT_NEAR(some.times[i], scattered[i] / 10.0, 1e-3);
  }
  // The same frames as the sequential decode, byte for byte.
  for (size_t i = 0; i < scattered.size(); ++i)
    EXPECT_EQ(0, std::memcmp(some.frame(i), all.frame(scattered[i]), some.frame_bytes())) << f.name << " " << i;
}

INSTANTIATE_TEST_SUITE_P(
    Video, Formats,
    ::testing::Values(
        Format{"h264_mp4", "mp4", "-c:v libx264 -pix_fmt yuv420p -g 10 -bf 2 -crf 12", "h264", 96, 64},
        Format{"vp9_webm_odd", "webm", "-c:v libvpx-vp9 -deadline realtime -cpu-used 8 -b:v 0 -crf 15 -g 10", "vp9",
               97, 61},
        Format{"mpeg4_avi", "avi", "-c:v mpeg4 -q:v 2 -g 10", "mpeg4", 96, 64},
        Format{"mjpeg_mkv", "mkv", "-c:v mjpeg -q:v 2", "mjpeg", 80, 48}),
    [](const auto& info) { return info.param.name; });

TEST(VideoReader, SeeksInsteadOfDecodingEverything) {
  REQUIRE_FFMPEG();
  std::string path = temp_dir("seek") + "/long.mp4";
  ASSERT_TRUE(ffmpeg_encode(numbered_clip(64, 48, 300), 30, "-c:v libx264 -pix_fmt yuv420p -g 30 -bf 3 -crf 20", path));
  VideoReader r(path);
  Frames one = r.read({250});
  expect_numbers(one, {250}, "seek");
  EXPECT_LE(r.last_stats().decoded, 30 + 8) << "decoded from the keyframe at 240, not from 0";
  EXPECT_GE(r.last_stats().seeks, 1);

  auto idx = sample_indices(SamplingSpec::parse("uniform:16"), r.timeline());
  Frames seek = r.read(idx, ReadMode::kSeek);
  int64_t seek_decoded = r.last_stats().decoded;
  Frames seq = r.read(idx, ReadMode::kSequential);
  EXPECT_EQ(r.last_stats().decoded, 300);
  EXPECT_LT(seek_decoded, 300);
  EXPECT_EQ(seek.rgb, seq.rgb);
  expect_numbers(seek, idx, "uniform:16");
  // Backwards and repeated requests after a forward read.
  Frames back = r.read({5, 299, 5});
  expect_numbers(back, {5, 299, 5}, "back");
}

TEST(VideoReader, RotationMetadataIsApplied) {
  REQUIRE_FFMPEG();
  std::string dir = temp_dir("rotate");
  std::string plain = dir + "/plain.mp4", rotated = dir + "/rotated.mp4";
  ASSERT_TRUE(ffmpeg_encode(numbered_clip(96, 64, 12), 12, "-c:v libx264 -pix_fmt yuv420p -crf 12", plain));
  ASSERT_EQ(0, run("ffmpeg -hide_banner -loglevel error -y -i '" + plain +
                   "' -c copy -metadata:s:v:0 rotate=90 '" + rotated + "'"));
  VideoReader r(rotated);
  ASSERT_TRUE(r.info().rotation == 90 || r.info().rotation == 270) << r.info().rotation;
  EXPECT_EQ(r.info().width, 64);
  EXPECT_EQ(r.info().height, 96);
  EXPECT_EQ(r.info().coded_width, 96);
  Frames f = r.read_all();
  EXPECT_EQ(f.width, 64);
  EXPECT_EQ(f.height, 96);
  // ffmpeg's autorotate agrees with our orientation.
  EXPECT_LT(mean_abs_diff(f, ffmpeg_decode(rotated, 64, 96)), 2.0);
  // Undoing the rotation recovers the drawn numbers.
  std::vector<uint8_t> back(96 * 64 * 3);
  for (int64_t i = 0; i < f.count; ++i) {
    rotate_rgb(f.frame(i), 64, 96, 360 - r.info().rotation, back.data());
    EXPECT_EQ(read_frame_number(back.data(), 96, 64), i);
  }
  ReaderOptions raw;
  raw.apply_rotation = false;
  VideoReader r2(rotated, raw);
  EXPECT_EQ(r2.info().width, 96);
  expect_numbers(r2.read({3}), {3}, "unrotated");
}

TEST(VideoReader, VariableFrameRateSamplesByTimestamp) {
  REQUIRE_FFMPEG();
  std::string path = temp_dir("vfr") + "/vfr.mkv";
  // Frame N is shown at 0.04 N + 0.004 N^2 seconds.
  const int64_t n = 30;
  ASSERT_TRUE(ffmpeg_encode(numbered_clip(64, 48, n), 25,
                            "-vf settb=1/1000,setpts='(N*0.04+N*N*0.004)/TB' -fps_mode passthrough -enc_time_base:v 1:1000 -c:v libx264 -pix_fmt yuv420p "
                            "-crf 12 -g 8",
                            path));
  VideoReader r(path);
  const Timeline& tl = r.timeline();
  ASSERT_EQ(tl.size(), n);
  for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(tl.times[i], 0.04 * i + 0.004 * i * i, 1.5e-3) << i;
  auto idx = sample_indices(SamplingSpec::parse("fps:2"), tl);
  std::vector<int64_t> expected;
  for (double t = 0; t < tl.duration() - 1e-9; t += 0.5) {
    int64_t k = 0;
    while (k + 1 < n && 0.04 * (k + 1) + 0.004 * (k + 1) * (k + 1) <= t + 1e-9) ++k;
    expected.push_back(k);
  }
  EXPECT_EQ(idx, expected);
  expect_numbers(r.read(idx), expected, "vfr fps:2");
  // t_10 = 0.8 <= 0.9 < t_11 = 0.924; t_17 = 1.836 <= 2.0 < t_18 = 2.016
  expect_numbers(r.read(SamplingSpec::parse("times:0.9,2.0")), {10, 17}, "vfr times");
}

TEST(VideoReader, OneFrameVideo) {
  REQUIRE_FFMPEG();
  std::string path = temp_dir("one") + "/one.mp4";
  ASSERT_TRUE(ffmpeg_encode(numbered_clip(64, 48, 1, 77), 25, "-c:v libx264 -pix_fmt yuv420p -crf 12", path));
  VideoReader r(path);
  EXPECT_EQ(r.timeline().size(), 1);
  expect_numbers(r.read_all(), {77}, "one");
  expect_numbers(r.read(SamplingSpec::parse("uniform:3")), {77, 77, 77}, "one x3");
  EXPECT_NE(error_of([&] { r.read(SamplingSpec::parse("qwen2vl")); }).find("at least 2 frames"), std::string::npos);
}

TEST(VideoReader, ErrorsNameTheFileAndTheCause) {
  REQUIRE_FFMPEG();
  std::string dir = temp_dir("errors");
  auto open = [](const std::string& p) { return error_of([&] { VideoReader r(p); r.read_all(); }); };

  std::string missing = dir + "/nope.mp4";
  EXPECT_NE(open(missing).find(missing + ": no such file"), std::string::npos);
  EXPECT_NE(open(dir).find("is a directory"), std::string::npos);

  std::string noise = dir + "/noise.mp4";
  {
    std::mt19937 rng(7);
    std::ofstream o(noise, std::ios::binary);
    for (int i = 0; i < 20000; ++i) o.put(static_cast<char>(rng()));
  }
  std::string e = open(noise);
  EXPECT_NE(e.find(noise + ": cannot open as a video file: "), std::string::npos) << e;

  std::string audio = dir + "/audio.m4a";
  ASSERT_EQ(0, run("ffmpeg -hide_banner -loglevel error -y -f lavfi -i sine=duration=1 -c:a aac '" + audio + "'"));
  e = open(audio);
  EXPECT_NE(e.find(audio + ": no video stream (streams: #0 audio aac)"), std::string::npos) << e;

  // Truncated with the index at the end (moov missing): cannot open.
  std::string whole = dir + "/whole.mp4", cut = dir + "/cut.mp4";
  ASSERT_TRUE(ffmpeg_encode(numbered_clip(64, 48, 60), 25, "-c:v libx264 -pix_fmt yuv420p -crf 12", whole));
  fs::copy_file(whole, cut);
  fs::resize_file(cut, fs::file_size(whole) / 2);
  e = open(cut);
  EXPECT_NE(e.find(cut + ": cannot open as a video file: "), std::string::npos) << e;

  // Truncated with the index first (faststart): opens; every frame it returns is the right one.
  std::string fast = dir + "/fast.mp4", fastcut = dir + "/fastcut.mp4";
  ASSERT_TRUE(ffmpeg_encode(numbered_clip(64, 48, 60), 25,
                            "-c:v libx264 -pix_fmt yuv420p -crf 12 -g 10 -movflags +faststart", fast));
  fs::copy_file(fast, fastcut);
  fs::resize_file(fastcut, fs::file_size(fast) * 6 / 10);
  try {
    VideoReader r(fastcut);
    Frames f = r.read_all();
    for (int64_t i = 0; i < f.count; ++i) EXPECT_EQ(read_frame_number(f.frame(i), 64, 48), i);
    EXPECT_LT(f.count, 60);
  } catch (const xattn::Error& err) {
    EXPECT_NE(std::string(err.what()).find(fastcut), std::string::npos) << err.what();
  }

  // An AVI whose codec tag no decoder knows.
  std::string avi = dir + "/mjpeg.avi", alien = dir + "/alien.avi";
  ASSERT_TRUE(ffmpeg_encode(numbered_clip(64, 48, 5), 25, "-c:v mjpeg", avi));
  {
    std::ifstream in(avi, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (size_t p = 0; (p = bytes.find("MJPG", p)) != std::string::npos;) bytes.replace(p, 4, "QZX9");
    std::ofstream(alien, std::ios::binary) << bytes;
  }
  e = open(alien);
  EXPECT_NE(e.find("no decoder for codec"), std::string::npos) << e;
  EXPECT_NE(e.find(alien + ": stream #0"), std::string::npos) << e;

  // Out-of-range indices name the valid range.
  VideoReader r(whole);
  e = error_of([&] { r.read({0, 60}); });
  EXPECT_NE(e.find("frame index 60 is out of range [0, 60)"), std::string::npos) << e;
  EXPECT_NE(e.find(whole + ": stream #0 (h264)"), std::string::npos) << e;

  // A video track with no frames.
  std::string empty = dir + "/empty.mp4";
  ASSERT_EQ(0, run("ffmpeg -hide_banner -loglevel error -y -f lavfi -i color=size=64x48 -frames:v 0 -c:v libx264 '" +
                   empty + "'"));
  e = open(empty);
  EXPECT_TRUE(e.find("no video stream") != std::string::npos || e.find("no frames") != std::string::npos ||
              e.find("cannot") != std::string::npos)
      << e;
  EXPECT_NE(e.find(empty), std::string::npos) << e;
}

TEST(VideoWriter, RoundTripKeepsQualityCountAndRate) {
  std::string dir = temp_dir("writer");
  Frames clip = natural_clip(320, 240, 48);
  for (double fps : {24.0, 30000.0 / 1001.0}) {
    std::string path = dir + "/rt_" + std::to_string(int(fps)) + ".mp4";
    WriterOptions o;
    o.fps = fps;
    o.crf = 18;
    o.preset = "fast";
    std::string codec = write_video(path, view_of(clip), o);
    EXPECT_EQ(codec, "libx264");
    VideoReader r(path);
    EXPECT_EQ(r.info().codec, "h264");
    EXPECT_EQ(r.info().pixel_format, "yuv420p");
    EXPECT_NEAR(r.info().avg_fps, fps, 1e-9);
    Frames back = r.read_all();
    ASSERT_EQ(back.count, clip.count);
    double p = psnr(back.rgb.data(), clip.rgb.data(), static_cast<int64_t>(clip.rgb.size()));
    EXPECT_GE(p, 40.0) << "PSNR at CRF 18, fps " << fps;
    EXPECT_FALSE(fs::exists(path + ".partial"));
  }
}

TEST(VideoWriter, Mpeg4FallbackAndOddSizes) {
  std::string dir = temp_dir("writer_odd");
  Frames clip = numbered_clip(97, 61, 10);
  WriterOptions o;
  o.codec = "mpeg4";
  o.crf = 12;
  EXPECT_EQ(write_video(dir + "/m4.mp4", view_of(clip), o), "mpeg4");
  VideoReader m4(dir + "/m4.mp4");
  EXPECT_EQ(m4.info().codec, "mpeg4");
  EXPECT_EQ(m4.info().width, 98);  // padded to even
  EXPECT_EQ(m4.info().height, 62);
  Frames back = m4.read_all();
  for (int64_t i = 0; i < back.count; ++i) {
    // The padding repeats the last column: compare the original area.
    Frames one;
    std::vector<uint8_t> crop(97 * 61 * 3);
    for (int y = 0; y < 61; ++y) std::memcpy(&crop[y * 97 * 3], back.frame(i) + y * 98 * 3, 97 * 3);
    EXPECT_EQ(read_frame_number(crop.data(), 97, 61), i);
    EXPECT_GE(psnr(crop.data(), clip.frame(i), 97 * 61 * 3), 30.0);
  }
  o = WriterOptions{};
  o.even = EvenSize::kCrop;
  write_video(dir + "/crop.mp4", view_of(clip), o);
  VideoReader c(dir + "/crop.mp4");
  EXPECT_EQ(c.info().width, 96);
  EXPECT_EQ(c.info().height, 60);
}

TEST(VideoWriter, UnfinishedFileNeverAppearsUnderItsName) {
  std::string dir = temp_dir("writer_abort");
  std::string path = dir + "/out.mp4";
  Frames clip = numbered_clip(64, 48, 5);
  {
    VideoWriter w(path, 64, 48);
    w.write(view_of(clip));
    EXPECT_TRUE(fs::exists(path + ".partial"));
    EXPECT_FALSE(fs::exists(path));
  }  // destroyed without close()
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path + ".partial"));

  EXPECT_NE(error_of([&] { VideoWriter w(path, 64, 48); w.write(view_of(numbered_clip(32, 32, 1))); })
                .find("frames are 32x32 but the writer was opened for 64x48"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(path + ".partial"));
  EXPECT_NE(error_of([&] { VideoWriter w(dir + "/x.unknownext", 64, 48); }).find("cannot tell the container"),
            std::string::npos);
  EXPECT_NE(error_of([&] { VideoWriter w(dir + "/no/such/dir/x.mp4", 64, 48); }).find("cannot create"),
            std::string::npos);
  WriterOptions bad;
  bad.preset = "warp-speed";
  EXPECT_NE(error_of([&] { VideoWriter w(path, 64, 48, bad); }).find("unknown preset 'warp-speed'"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(path));
}

TEST(VideoWriter, PngFramesAndContactSheet) {
  std::string dir = temp_dir("png");
  Frames clip = numbered_clip(50, 30, 5);
  auto paths = write_pngs(dir + "/frames", view_of(clip));
  ASSERT_EQ(paths.size(), 5u);
  // PNG is lossless: reading it back with FFmpeg gives the exact pixels.
  VideoReader r(paths[3]);
  Frames back = r.read_all();
  ASSERT_EQ(back.count, 1);
  EXPECT_EQ(0, std::memcmp(back.frame(0), clip.frame(3), clip.frame_bytes()));
  write_contact_sheet(dir + "/sheet.png", view_of(clip), 3, 25);
  VideoReader s(dir + "/sheet.png");
  // 3 columns of 25 px + 4 gaps of 2; 2 rows of 15 px + 3 gaps
  EXPECT_EQ(s.info().width, 3 * 25 + 4 * 2);
  EXPECT_EQ(s.info().height, 2 * 15 + 3 * 2);
}
