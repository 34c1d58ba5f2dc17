// Test fixtures for video I/O, made at test time: frames that carry their own frame number
// (16 black/white cells, readable after lossy coding) and files encoded by the ffmpeg CLI.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "video/frames.h"

namespace xattn::video::testing {

// Frame `index` of a w x h clip: the number as 16 cells in the top half, a moving smooth
// pattern below (so codecs have real work).
void draw_numbered_frame(uint8_t* rgb, int w, int h, int64_t index);
// Reads the number back; -1 when a cell is ambiguous (mean within 40 of mid-grey).
int64_t read_frame_number(const uint8_t* rgb, int w, int h);
Frames numbered_clip(int w, int h, int64_t count, int64_t first = 0);

// A smooth, "natural-looking" clip: drifting colour gradients, soft blobs and fine texture.
Frames natural_clip(int w, int h, int64_t count);

// Pipes raw RGB frames into `ffmpeg -f rawvideo ... <args> <out>`; returns false (and sets
// `log`) when ffmpeg fails. `args` are the output options, e.g. "-c:v libx264 -pix_fmt yuv420p".
bool ffmpeg_encode(const Frames& frames, double fps, const std::string& args, const std::string& out,
                   std::string* log = nullptr);
// Runs a shell command; returns its exit status.
int run(const std::string& command);
bool have_ffmpeg();
// ffmpeg's own decode of a file to RGB24 (autorotated), for cross-checking.
Frames ffmpeg_decode(const std::string& path, int w, int h);

double psnr(const uint8_t* a, const uint8_t* b, int64_t n);
std::string temp_dir(const std::string& name);  // fresh, under the test tmp dir

}  // namespace xattn::video::testing
