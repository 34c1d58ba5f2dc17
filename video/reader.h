// VideoReader: FFmpeg (libavformat/libavcodec/libswscale) decoding to RGB frames.
//
//   xattn::video::VideoReader r("clip.mp4");
//   const VideoInfo& info = r.info();                 // container metadata, no decoding
//   auto idx = sample_indices(SamplingSpec::parse("uniform:64"), r.timeline());
//   Frames f = r.read(idx);                            // [64, H, W, 3] uint8, rotation applied
//
// Frames are numbered in presentation order. timeline() scans the stream's packets once
// (demuxing only, no decoding) to learn every frame's timestamp and where keyframes are;
// read() then seeks to the keyframe before each wanted frame and decodes forward only as far
// as needed, matching frames by presentation timestamp, so variable-frame-rate files sample
// correctly. Errors (missing, corrupt, truncated, audio-only files, unsupported codecs,
// out-of-range indices) throw xattn::Error naming the file, the stream and FFmpeg's message.
// No FFmpeg type appears in this header.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/progress.h"
#include "video/frames.h"
#include "video/sampling.h"

namespace xattn::video {

struct VideoInfo {
  std::string path;
  std::string container;      // libavformat's name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
  std::string codec;          // e.g. "h264"
  std::string pixel_format;   // e.g. "yuv420p"
  int stream_index = -1;
  int coded_width = 0, coded_height = 0;  // as stored
  int width = 0, height = 0;              // as displayed: after rotation
  int rotation = 0;           // clockwise degrees applied for display: 0, 90, 180 or 270
  double duration = 0.0;      // seconds (stream, else container)
  double avg_fps = 0.0;       // average frame rate (avg_frame_rate, else r_frame_rate)
  double real_fps = 0.0;      // r_frame_rate: the lowest rate that represents all timestamps
  int64_t frame_count = 0;    // exact once timeline() ran or the container states it
  bool frame_count_exact = false;  // false: estimated as duration x avg_fps
  int64_t bit_rate = 0;       // bits per second, 0 when unknown
  bool has_audio = false;
};

struct ReaderOptions {
  int threads = 0;              // decoder threads; 0 = FFmpeg picks (one per core)
  bool apply_rotation = true;   // rotate frames as the display-matrix side data says
  // Sparse reads spread keyframe groups over this many workers, each with its own demuxer and
  // decoder (0 = one per core; 1 = none). Frames are identical either way.
  int parallel_seeks = 0;
};

enum class ReadMode {
  kSeek,        // seek to the keyframe before each wanted frame (default)
  kSequential,  // decode every frame from the start, keep the wanted ones (for comparison)
};

class VideoReader {
 public:
  explicit VideoReader(const std::string& path, ReaderOptions options = {});
  ~VideoReader();
  VideoReader(VideoReader&&) noexcept;
  VideoReader& operator=(VideoReader&&) noexcept;

  const VideoInfo& info() const;
  // Every frame's presentation time; scans packets on first use (cached). Updates
  // info().frame_count to the exact count.
  const Timeline& timeline();
  // Decodes the given frames (presentation-order indices, any order, repeats allowed) and
  // returns them in the order asked. Throws for an index outside [0, frame_count).
  Frames read(const std::vector<int64_t>& indices, ReadMode mode = ReadMode::kSeek,
              const ProgressCallback& progress = nullptr);
  Frames read(const SamplingSpec& spec, const ProgressCallback& progress = nullptr);
  Frames read_all(const ProgressCallback& progress = nullptr);

  // Counters of the last read(): packets demuxed, frames decoded, seeks made.
  struct Stats {
    int64_t packets = 0, decoded = 0, seeks = 0;
  };
  const Stats& last_stats() const;

  struct Impl;  // defined in reader.cpp

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace xattn::video
