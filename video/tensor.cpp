#include "video/tensor.h"

#include "core/device.h"
#include "core/error.h"

namespace xattn::video {

at::Tensor to_tensor(Frames&& frames) {
  auto* owned = new FrameBuffer(std::move(frames.rgb));
  // frames: [T, H, W, 3]
  return at::from_blob(owned->data(), {frames.count, frames.height, frames.width, 3},
                       [owned](void*) { delete owned; }, at::TensorOptions().dtype(at::kByte));
}

Frames frames_from_tensor(const at::Tensor& frames) {
  XATTN_CHECK_IN("video", frames.defined() && frames.dim() == 4, "frames: expected [T, H, W, 3] uint8 or ",
                 "[T, 3, H, W] float in [0, 1], got ", frames.defined() ? shape_str(frames) : "undefined");
  at::Tensor hwc;
  if (frames.scalar_type() == at::kByte) {
    XATTN_CHECK_IN("video", frames.size(3) == 3, "frames: uint8 frames must be [T, H, W, 3], got ", shape_str(frames));
    hwc = frames;
  } else {
    XATTN_CHECK_IN("video", at::isFloatingType(frames.scalar_type()) && frames.size(1) == 3,
                   "frames: floating frames must be [T, 3, H, W] in [0, 1], got ", shape_str(frames), " ",
                   frames.scalar_type());
    hwc = frames.to(at::kFloat).clamp(0.0, 1.0).mul(255.0).round_().to(at::kByte).permute({0, 2, 3, 1});
  }
  hwc = hwc.to(at::kCPU).contiguous();
  Frames out;
  out.count = hwc.size(0);
  out.height = static_cast<int>(hwc.size(1));
  out.width = static_cast<int>(hwc.size(2));
  const uint8_t* p = hwc.data_ptr<uint8_t>();
  out.rgb.assign(p, p + hwc.numel());
  return out;
}

at::Tensor read_video(const std::string& path, const SamplingSpec& spec, ReaderOptions options,
                      const ProgressCallback& progress) {
  VideoReader reader(path, options);
  return to_tensor(reader.read(spec, progress));
}

std::string write_video_tensor(const std::string& path, const at::Tensor& frames, const WriterOptions& options) {
  Frames f = frames_from_tensor(frames);
  return write_video(path, view_of(f), options);
}

}  // namespace xattn::video
