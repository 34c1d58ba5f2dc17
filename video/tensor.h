// LibTorch side of video I/O: frames as tensors.
//
//   at::Tensor clip = xattn::video::read_video("clip.mp4", SamplingSpec::parse("uniform:16"));
//   // clip: [16, H, W, 3] uint8 on CPU
//   xattn::video::write_video_tensor("out.mp4", frames_float_TCHW);   // 24 fps, CRF 18
#pragma once

#include <ATen/ATen.h>

#include <string>

#include "video/frames.h"
#include "video/reader.h"
#include "video/writer.h"

namespace xattn::video {

// [T, H, W, 3] uint8 CPU tensor that owns the frames' memory (no copy).
at::Tensor to_tensor(Frames&& frames);

// Frames (uint8, [T, H, W, 3]) from a tensor that is either uint8 [T, H, W, 3] or floating
// [T, 3, H, W] in [0, 1] (values outside are clamped), on any device.
Frames frames_from_tensor(const at::Tensor& frames);

at::Tensor read_video(const std::string& path, const SamplingSpec& spec = {}, ReaderOptions options = {},
                      const ProgressCallback& progress = nullptr);
std::string write_video_tensor(const std::string& path, const at::Tensor& frames, const WriterOptions& options = {});

}  // namespace xattn::video
