// A bounded mutation fuzzer over the reader's open / probe / decode path: valid files of four
// containers are corrupted (bit flips, overwritten runs, truncation, spliced chunks) and fed to
// VideoReader. The only acceptable outcomes are frames or xattn::Error; under the sanitizer
// build (sanitize.video_base) any memory error or leak fails the run. Seeds are fixed so a
// failure reproduces; XATTN_FUZZ_ITERS / XATTN_FUZZ_SECONDS widen the run.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>

#include "core/error.h"
#include "video/reader.h"
#include "video_fixtures.h"

using namespace xattn::video;
using namespace xattn::video::testing;

namespace {
std::string slurp(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::string mutate(const std::string& src, std::mt19937& rng) {
  std::string s = src;
  auto pos = [&] { return s.empty() ? size_t(0) : size_t(rng() % s.size()); };
  int kind = static_cast<int>(rng() % 5);
  int n = 1 + static_cast<int>(rng() % 16);
  switch (kind) {
    case 0:  // bit flips
      for (int i = 0; i < n && !s.empty(); ++i) s[pos()] ^= static_cast<char>(1u << (rng() % 8));
      break;
    case 1: {  // overwrite a run with random bytes
      size_t p = pos(), len = std::min<size_t>(s.size() - p, 1 + rng() % 64);
      for (size_t i = 0; i < len; ++i) s[p + i] = static_cast<char>(rng());
      break;
    }
    case 2:  // truncate
      s.resize(pos());
      break;
    case 3: {  // duplicate a chunk elsewhere
      size_t a = pos(), len = std::min<size_t>(s.size() - a, 1 + rng() % 256);
      std::string chunk = s.substr(a, len);
      s.insert(pos(), chunk);
      break;
    }
    default:  // interesting integers in header-ish positions
      for (int i = 0; i < n && s.size() > 8; ++i) {
        size_t p = rng() % std::min<size_t>(s.size() - 4, 4096);
        uint32_t v = (rng() % 2) ? 0xFFFFFFFFu : (rng() % 3 ? 0u : 0x7FFFFFFFu);
        std::memcpy(&s[p], &v, 4);
      }
  }
  return s;
}
}  // namespace

TEST(VideoFuzz, CorruptFilesFailCleanly) {
  if (!have_ffmpeg()) GTEST_SKIP() << "the ffmpeg CLI is needed to make seed files";
  std::string dir = temp_dir("fuzz");
  Frames clip = numbered_clip(48, 32, 12);
  std::vector<std::string> seeds;
  struct S {
    const char* name;
    const char* args;
  } specs[] = {{"s.mp4", "-c:v libx264 -pix_fmt yuv420p -g 4 -bf 2"},
               {"s.webm", "-c:v libvpx-vp9 -deadline realtime -cpu-used 8 -g 4"},
               {"s.avi", "-c:v mpeg4 -g 4"},
               {"s.mkv", "-c:v mjpeg"}};
  for (auto& sp : specs) {
    std::string p = dir + "/" + sp.name;
    ASSERT_TRUE(ffmpeg_encode(clip, 12, sp.args, p));
    seeds.push_back(slurp(p));
  }
  int iters = std::getenv("XATTN_FUZZ_ITERS") ? std::atoi(std::getenv("XATTN_FUZZ_ITERS")) : 1500;
  double seconds = std::getenv("XATTN_FUZZ_SECONDS") ? std::atof(std::getenv("XATTN_FUZZ_SECONDS")) : 45.0;
  std::mt19937 rng(20261126);
  auto start = std::chrono::steady_clock::now();
  int opened = 0, decoded = 0, errors = 0, runs = 0;
  for (int it = 0; it < iters; ++it) {
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > seconds) break;
    const std::string& seed = seeds[it % seeds.size()];
    std::string bytes = mutate(seed, rng);
    if (rng() % 3 == 0) bytes = mutate(bytes, rng);
    std::string path = dir + "/case" + std::string(specs[it % seeds.size()].name + 1);
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
    ++runs;
    try {
      ReaderOptions o;
      o.threads = 1 + it % 2;
      VideoReader r(path, o);
      ++opened;
      const auto& tl = r.timeline();
      if (tl.size() > 0) {
        Frames f = r.read(sample_indices(SamplingSpec::parse("uniform:3"), tl));
        EXPECT_EQ(f.count, 3);
        EXPECT_EQ(f.rgb.size(), static_cast<size_t>(3 * f.frame_bytes()));
        ++decoded;
      }
    } catch (const xattn::Error& e) {
      ++errors;
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << "error without the file name: " << e.what();
    }
  }
  RecordProperty("runs", runs);
  std::printf("fuzz: %d inputs, %d opened, %d decoded, %d clean errors\n", runs, opened, decoded, errors);
  EXPECT_GT(runs, 50);
  EXPECT_GT(decoded, 0);
  EXPECT_GT(errors, 0);
}
