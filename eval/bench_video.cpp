#include "eval/bench_video.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <vector>

#include "core/error.h"
#include "core/log.h"
#include "video/reader.h"
#include "video/writer.h"

namespace xattn::eval {
namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// A moving test pattern: a wide textured background scrolled per frame plus a bouncing
// block, cheap to draw and with real motion for the encoder.
void generate(const std::string& path, const VideoBenchConfig& c, const ProgressCallback& progress) {
  const int h = c.height & ~1, w = (static_cast<int>(std::lround(c.height * 16.0 / 9.0)) + 1) & ~1;
  const int64_t total = static_cast<int64_t>(std::llround(c.minutes * 60.0 * c.fps));
  XATTN_CHECK_IN("bench", total > 0 && h >= 16, "bench video: nothing to generate (", c.minutes, " min at ", c.height,
                 "p)");
  const int wide = w + 512;
  std::vector<uint8_t> bg(static_cast<size_t>(wide) * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < wide; ++x) {
      uint8_t* p = &bg[(static_cast<size_t>(y) * wide + x) * 3];
      p[0] = static_cast<uint8_t>(128 + 90 * std::sin(x * 0.031) * std::cos(y * 0.017));
      p[1] = static_cast<uint8_t>(128 + 70 * std::sin((x + y) * 0.011) + 20 * std::sin(x * 0.5));
      p[2] = static_cast<uint8_t>(128 + 80 * std::cos(y * 0.023 - x * 0.007));
    }
  video::WriterOptions o;
  o.fps = c.fps;
  o.crf = 23;
  o.preset = "veryfast";  // keeps B-frames, like real-world H.264
  o.gop = std::max(1, static_cast<int>(std::lround(c.gop_seconds * c.fps)));
  video::VideoWriter writer(path, w, h, o);
  std::vector<uint8_t> frame(static_cast<size_t>(w) * h * 3);
  Progress prog(progress, "generate", total, "frame");
  for (int64_t i = 0; i < total; ++i) {
    int shift = static_cast<int>((i * 3) % 512);
    for (int y = 0; y < h; ++y)
      std::memcpy(&frame[static_cast<size_t>(y) * w * 3], &bg[(static_cast<size_t>(y) * wide + shift) * 3],
                  static_cast<size_t>(w) * 3);
    int bx = static_cast<int>((i * 7) % (w - 64)), by = static_cast<int>((i * 5) % (h - 64));
    for (int y = by; y < by + 64; ++y)
      for (int x = bx; x < bx + 64; ++x) {
        uint8_t* p = &frame[(static_cast<size_t>(y) * w + x) * 3];
        p[0] = static_cast<uint8_t>(i);
        p[1] = 255 - static_cast<uint8_t>(i);
        p[2] = 40;
      }
    writer.write({frame.data(), 1, h, w});
    if (i % 64 == 0 || i + 1 == total) prog.update(i + 1);
  }
  writer.close();
  prog.finish();
}

}  // namespace

Table VideoBenchResult::table() const {
  Table t;
  for (auto [name, num] : std::initializer_list<std::pair<const char*, bool>>{
           {"file", false}, {"resolution", false}, {"duration_s", true}, {"frames", true}, {"sample", false},
           {"sampled", true}, {"sparse_s", true}, {"scan_s", true}, {"sparse_decoded", true}, {"seeks", true}, {"full_s", true},
           {"full_decoded", true}, {"speedup", true}, {"identical", false}})
    t.add_column(name, num);
  t.rows.push_back({std::filesystem::path(file).filename().string(), std::to_string(width) + "x" + std::to_string(height),
                    fmt(duration_s, 1), std::to_string(frames), sample, std::to_string(sampled), fmt(sparse_s, 3), fmt(scan_s, 3),
                    std::to_string(sparse_decoded), std::to_string(sparse_seeks), fmt(full_s, 3),
                    std::to_string(full_decoded), fmt(sparse_s > 0 ? full_s / sparse_s : 0.0, 2),
                    identical ? "yes" : "NO"});
  return t;
}

VideoBenchResult run_video_bench(const VideoBenchConfig& c, const ProgressCallback& progress) {
  VideoBenchResult r;
  std::string path = c.input;
  bool temporary = false;
  if (path.empty()) {
    if (!c.keep.empty()) {
      path = c.keep;
    } else {
      path = (std::filesystem::temp_directory_path() /
              ("xattn-bench-video-" + std::to_string(static_cast<long>(now_s() * 1000)) + ".mp4"))
                 .string();
      temporary = true;
    }
    if (!std::filesystem::exists(path)) {
      XATTN_LOG_INFO("bench video: generating ", c.minutes, " min of ", c.height, "p H.264 (", c.gop_seconds,
                     " s GOP) into ", path);
      double t0 = now_s();
      generate(path, c, progress);
      r.generate_s = now_s() - t0;
    } else {
      XATTN_LOG_INFO("bench video: reusing ", path);
    }
  }
  struct Cleanup {
    std::string p;
    bool on;
    ~Cleanup() {
      std::error_code ec;
      if (on) std::filesystem::remove(p, ec);
    }
  } cleanup{path, temporary};

  video::ReaderOptions ro;
  ro.threads = c.threads;
  const video::SamplingSpec spec = video::SamplingSpec::parse(c.sample);
  r.file = path;
  r.sample = c.sample;

  // Sparse: open, scan the timeline, sample, seek and decode.
  double t0 = now_s();
  video::VideoReader sparse_reader(path, ro);
  std::vector<int64_t> idx = video::sample_indices(spec, sparse_reader.timeline());
  r.scan_s = now_s() - t0;
  video::Frames sparse = sparse_reader.read(idx, video::ReadMode::kSeek, progress);
  r.sparse_s = now_s() - t0;
  r.sparse_decoded = sparse_reader.last_stats().decoded;
  r.sparse_seeks = sparse_reader.last_stats().seeks;

  // Full: open and decode every frame from the start, keeping the same ones.
  t0 = now_s();
  video::VideoReader full_reader(path, ro);
  video::Frames full = full_reader.read(idx, video::ReadMode::kSequential, progress);
  r.full_s = now_s() - t0;
  r.full_decoded = full_reader.last_stats().decoded;

  const auto& info = sparse_reader.info();
  r.width = info.width;
  r.height = info.height;
  r.frames = info.frame_count;
  r.duration_s = sparse_reader.timeline().duration();
  r.sampled = static_cast<int64_t>(idx.size());
  r.identical = sparse.rgb == full.rgb && sparse.count == full.count;
  return r;
}

}  // namespace xattn::eval
