// VideoWriter: RGB frames to H.264 (libx264) in MP4, yuv420p, through libavcodec/libavformat.
// Falls back to MPEG-4 Part 2 when this FFmpeg has no libx264. Also PNG frames and a
// contact-sheet PNG for quick looks.
//
//   WriterOptions opts;  opts.fps = 24;  opts.crf = 18;
//   VideoWriter w("out.mp4", width, height, opts);
//   w.write(frames);           // any number of calls
//   w.close();                 // flushes and moves the file into place
//
// The file is written under "<path>.partial" and renamed on close(), so an interrupted run
// (exception, Ctrl-C) never leaves a half-written video under the final name; a writer
// destroyed without close() deletes its partial file. Odd widths/heights (yuv420p needs even)
// are padded by repeating the last column/row, or cropped (EvenSize::kCrop).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "video/frames.h"

namespace xattn::video {

enum class EvenSize { kPad, kCrop };

struct WriterOptions {
  double fps = 24.0;
  int crf = 18;                   // 0 (lossless) .. 51; MPEG-4 fallback maps it to a quantiser
  std::string preset = "medium";  // libx264 preset: ultrafast .. veryslow
  std::string codec = "auto";     // "auto" (libx264, else mpeg4), "libx264" or "mpeg4"
  int gop = 0;                    // keyframe interval in frames; 0 = encoder default
  EvenSize even = EvenSize::kPad;
  int threads = 0;                // encoder threads; 0 = FFmpeg picks
};

class VideoWriter {
 public:
  VideoWriter(const std::string& path, int width, int height, WriterOptions options = {});
  ~VideoWriter();
  VideoWriter(const VideoWriter&) = delete;
  VideoWriter& operator=(const VideoWriter&) = delete;

  // Appends frames of the size given to the constructor.
  void write(const FrameView& frames);
  // Flushes the encoder, finishes the container and renames the file into place.
  void close();

  const std::string& codec() const;   // encoder used: "libx264" or "mpeg4"
  int encoded_width() const;          // after even-size handling
  int encoded_height() const;
  int64_t frames_written() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Writes all frames to `path` in one call; returns the encoder used.
std::string write_video(const std::string& path, const FrameView& frames, const WriterOptions& options = {});

// One RGB image as PNG (FFmpeg's PNG encoder).
void write_png(const std::string& path, const uint8_t* rgb, int width, int height);
// Every frame as DIR/<prefix>NNNNN.png (numbered from 0); returns the paths written.
std::vector<std::string> write_pngs(const std::string& dir, const FrameView& frames,
                                    const std::string& prefix = "frame_");
// A grid of thumbnails (`columns` per row, each `thumb_width` wide) as one PNG.
void write_contact_sheet(const std::string& path, const FrameView& frames, int columns = 8,
                         int thumb_width = 240);

}  // namespace xattn::video
