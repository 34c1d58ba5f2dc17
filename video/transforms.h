// Frame transforms for model inputs: resize, Qwen2-VL smart_resize, center crop, layout and
// normalisation.
//
//   at::Tensor f = read_video(path, SamplingSpec::parse("qwen2vl"));        // [T, H, W, 3] uint8
//   auto [h, w] = smart_resize(f.size(1), f.size(2), 28, kQwen2VLVideoMinPixels,
//                              qwen2vl_video_max_pixels(f.size(0)));
//   at::Tensor x = resize(f, h, w, Interp::kBicubic, Rounding::kFloat);     // as torchvision
//   x = normalize(to_float_chw(x, device), kClipMean, kClipStd);          // [T, 3, h, w] float
//
// Antialiased bilinear/bicubic downscaling uses Pillow's separable filter (support scaled
// by the reduction factor, bicubic a = -0.5), which OpenCV lacks; OpenCV does the rest
// (upscaling, nearest, area). Rounding::kPil reproduces Pillow's 8-bit fixed-point passes;
// Rounding::kFloat keeps float between passes and rounds once, as torchvision's antialiased
// tensor resize does (what qwen_vl_utils calls for videos).
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <cstdint>
#include <utility>

namespace xattn::video {

enum class Interp { kNearest, kBilinear, kBicubic, kArea };
enum class Rounding { kPil, kFloat };

// frames: [T, H, W, 3] uint8 (CPU) -> [T, height, width, 3] uint8. Downscaling with bilinear
// or bicubic is antialiased when `antialias` is true.
at::Tensor resize(const at::Tensor& frames, int height, int width, Interp interp = Interp::kBicubic,
                  Rounding rounding = Rounding::kPil, bool antialias = true);

// Qwen2-VL's smart_resize: height and width rounded to multiples of `factor`, rescaled (aspect
// kept) into [min_pixels, max_pixels]. Throws when the aspect ratio exceeds 200.
std::pair<int, int> smart_resize(int64_t height, int64_t width, int factor = 28,
                                 int64_t min_pixels = 56 * 56, int64_t max_pixels = 14 * 14 * 4 * 1280);
constexpr int64_t kQwen2VLVideoMinPixels = 128 * 28 * 28;
constexpr int64_t kQwen2VLVideoMaxPixels = 768 * 28 * 28;
constexpr int64_t kQwen2VLVideoTotalPixels = 24576 * 28 * 28;
// Per-frame pixel budget for `nframes` frames: max(min(768*28^2, total/nframes*2), 1.05*128*28^2).
int64_t qwen2vl_video_max_pixels(int64_t nframes, int64_t total_pixels = kQwen2VLVideoTotalPixels);

// [T, H, W, C] -> center [T, height, width, C] (a view).
at::Tensor center_crop(const at::Tensor& frames, int64_t height, int64_t width);

// [T, H, W, 3] uint8 -> [T, 3, H, W] float32 in [0, 1] on `device`.
at::Tensor to_float_chw(const at::Tensor& frames, const at::Device& device = at::kCPU);
at::Tensor hwc_to_chw(const at::Tensor& frames);  // [T, H, W, C] -> [T, C, H, W]
at::Tensor chw_to_hwc(const at::Tensor& frames);  // [T, C, H, W] -> [T, H, W, C]

// (x - mean) / std per channel of a [T, 3, H, W] floating tensor.
at::Tensor normalize(const at::Tensor& frames, const std::array<double, 3>& mean, const std::array<double, 3>& std);
constexpr std::array<double, 3> kClipMean = {0.48145466, 0.4578275, 0.40821073};
constexpr std::array<double, 3> kClipStd = {0.26862954, 0.26130258, 0.27577711};

}  // namespace xattn::video
