#include "video/transforms.h"

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/device.h"
#include "core/error.h"

namespace xattn::video {
namespace {


void check_frames(const at::Tensor& f, const char* what) {
  XATTN_CHECK_IN("video", f.defined() && f.dim() == 4 && f.scalar_type() == at::kByte && f.size(3) == 3,
                 what, ": expected frames [T, H, W, 3] uint8, got ",
                 f.defined() ? shape_str(f) + " " + std::string(c10::toString(f.scalar_type())) : "undefined");
}

double bicubic_filter(double x) {
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}
double bilinear_filter(double x) {
  x = std::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

// Per output pixel: first input index and normalised weights (Pillow's precompute_coeffs).
struct Coeffs {
  std::vector<int> first, count;
  std::vector<double> w;  // out_size x kmax
  int kmax = 0;
};

Coeffs make_coeffs(int in_size, int out_size, Interp interp) {
  double support0 = interp == Interp::kBicubic ? 2.0 : 1.0;
  double scale = double(in_size) / out_size;
  double filterscale = std::max(scale, 1.0);
  double support = support0 * filterscale;
  Coeffs c;
  c.kmax = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.first.resize(out_size);
  c.count.resize(out_size);
  c.w.assign(static_cast<size_t>(out_size) * c.kmax, 0.0);
  for (int xx = 0; xx < out_size; ++xx) {
    double center = (xx + 0.5) * scale;
    double ss = 1.0 / filterscale;
    int xmin = std::max(static_cast<int>(center - support + 0.5), 0);
    int xmax = std::min(static_cast<int>(center + support + 0.5), in_size) - xmin;
    double* k = &c.w[static_cast<size_t>(xx) * c.kmax];
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      double arg = (x + xmin - center + 0.5) * ss;
      double w = interp == Interp::kBicubic ? bicubic_filter(arg) : bilinear_filter(arg);
      k[x] = w;
      ww += w;
    }
    for (int x = 0; x < xmax; ++x)
      if (ww != 0.0) k[x] /= ww;
    c.first[xx] = xmin;
    c.count[xx] = xmax;
  }
  return c;
}

constexpr int kPrecisionBits = 32 - 8 - 2;

inline uint8_t clip8(int64_t v) {
  v >>= kPrecisionBits;
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// One separable pass over an image of `lines` lines; `step_in`/`step_out` are the strides
// (in pixels) between consecutive samples along the resampled axis, `line_in`/`line_out`
// between lines.
template <class In, class Out, class Emit>
void pass(const In* src, Out* dst, int lines, const Coeffs& c, int out_size, int64_t step_in, int64_t line_in,
          int64_t step_out, int64_t line_out, Emit emit) {
  for (int l = 0; l < lines; ++l) {
    const In* s = src + l * line_in;
    Out* d = dst + l * line_out;
    for (int o = 0; o < out_size; ++o) {
      const double* k = &c.w[static_cast<size_t>(o) * c.kmax];
      const In* base = s + c.first[o] * step_in;
      for (int ch = 0; ch < 3; ++ch) emit(base + ch, k, c.count[o], step_in, d + o * step_out + ch);
    }
  }
}

// Antialiased separable resize of one [H, W, 3] frame (horizontal pass first, like Pillow).
void resample_frame(const uint8_t* src, int h, int w, uint8_t* dst, int oh, int ow, Interp interp, Rounding rounding,
                    const Coeffs& ch_, const Coeffs& cv_) {
  if (rounding == Rounding::kPil) {
    // Fixed-point coefficients with 22 fractional bits and a uint8 image between passes.
    auto to_int = [](const Coeffs& c) {
      std::vector<int32_t> k(c.w.size());
      for (size_t i = 0; i < k.size(); ++i)
        k[i] = static_cast<int32_t>(c.w[i] < 0 ? std::trunc(c.w[i] * (1 << kPrecisionBits) - 0.5)
                                               : std::trunc(c.w[i] * (1 << kPrecisionBits) + 0.5));
      return k;
    };
    std::vector<int32_t> kh = to_int(ch_), kv = to_int(cv_);
    std::vector<uint8_t> mid(static_cast<size_t>(h) * ow * 3);
    for (int y = 0; y < h; ++y)
      for (int o = 0; o < ow; ++o) {
        const int32_t* k = &kh[static_cast<size_t>(o) * ch_.kmax];
        const uint8_t* s = src + (static_cast<int64_t>(y) * w + ch_.first[o]) * 3;
        for (int c = 0; c < 3; ++c) {
          int64_t acc = int64_t(1) << (kPrecisionBits - 1);
          for (int i = 0; i < ch_.count[o]; ++i) acc += int64_t(s[i * 3 + c]) * k[i];
          mid[(static_cast<int64_t>(y) * ow + o) * 3 + c] = clip8(acc);
        }
      }
    for (int o = 0; o < oh; ++o) {
      const int32_t* k = &kv[static_cast<size_t>(o) * cv_.kmax];
      for (int x = 0; x < ow; ++x)
        for (int c = 0; c < 3; ++c) {
          int64_t acc = int64_t(1) << (kPrecisionBits - 1);
          for (int i = 0; i < cv_.count[o]; ++i)
            acc += int64_t(mid[(static_cast<int64_t>(cv_.first[o] + i) * ow + x) * 3 + c]) * k[i];
          dst[(static_cast<int64_t>(o) * ow + x) * 3 + c] = clip8(acc);
        }
    }
    return;
  }
  // Float between passes, one rounding at the end.
  std::vector<float> mid(static_cast<size_t>(h) * ow * 3);
  for (int y = 0; y < h; ++y)
    for (int o = 0; o < ow; ++o) {
      const double* k = &ch_.w[static_cast<size_t>(o) * ch_.kmax];
      const uint8_t* s = src + (static_cast<int64_t>(y) * w + ch_.first[o]) * 3;
      for (int c = 0; c < 3; ++c) {
        double acc = 0;
        for (int i = 0; i < ch_.count[o]; ++i) acc += s[i * 3 + c] * k[i];
        mid[(static_cast<int64_t>(y) * ow + o) * 3 + c] = static_cast<float>(acc);
      }
    }
  for (int o = 0; o < oh; ++o) {
    const double* k = &cv_.w[static_cast<size_t>(o) * cv_.kmax];
    for (int x = 0; x < ow; ++x)
      for (int c = 0; c < 3; ++c) {
        double acc = 0;
        for (int i = 0; i < cv_.count[o]; ++i) acc += mid[(static_cast<int64_t>(cv_.first[o] + i) * ow + x) * 3 + c] * k[i];
        double v = std::nearbyint(acc);
        dst[(static_cast<int64_t>(o) * ow + x) * 3 + c] = static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
      }
  }
  (void)interp;
}

}  // namespace

at::Tensor resize(const at::Tensor& frames, int height, int width, Interp interp, Rounding rounding, bool antialias) {
  check_frames(frames, "resize");
  XATTN_CHECK_IN("video", height > 0 && width > 0, "resize: target size must be positive, got ", height, "x", width);
  at::Tensor src = frames.to(at::kCPU).contiguous();
  const int64_t T = src.size(0);
  const int h = static_cast<int>(src.size(1)), w = static_cast<int>(src.size(2));
  at::Tensor out = at::empty({T, height, width, 3}, src.options());  // [T, height, width, 3]
  if (T == 0) return out;
  // Pillow's filters (also for upscaling, where they reduce to plain bilinear/bicubic a=-0.5).
  bool separable = antialias && (interp == Interp::kBicubic || interp == Interp::kBilinear);
  if (separable) {
    Coeffs ch = make_coeffs(w, width, interp), cv = make_coeffs(h, height, interp);
    for (int64_t t = 0; t < T; ++t)
      resample_frame(src.data_ptr<uint8_t>() + t * h * w * 3, h, w, out.data_ptr<uint8_t>() + t * height * width * 3,
                     height, width, interp, rounding, ch, cv);
    return out;
  }
  int flag = interp == Interp::kNearest ? cv::INTER_NEAREST
             : interp == Interp::kBilinear ? cv::INTER_LINEAR
             : interp == Interp::kBicubic  ? cv::INTER_CUBIC
                                           : cv::INTER_AREA;
  for (int64_t t = 0; t < T; ++t) {
    cv::Mat in(h, w, CV_8UC3, src.data_ptr<uint8_t>() + t * h * w * 3);
    cv::Mat o(height, width, CV_8UC3, out.data_ptr<uint8_t>() + t * height * width * 3);
    cv::resize(in, o, cv::Size(width, height), 0, 0, flag);
  }
  return out;
}

std::pair<int, int> smart_resize(int64_t height, int64_t width, int factor, int64_t min_pixels, int64_t max_pixels) {
  XATTN_CHECK_IN("video", height > 0 && width > 0 && factor > 0, "smart_resize: bad size ", height, "x", width);
  double ratio = double(std::max(height, width)) / double(std::min(height, width));
  XATTN_CHECK_IN("video", ratio <= 200.0, "smart_resize: absolute aspect ratio must be at most 200, got ", ratio);
  auto round_by = [&](double v) { return static_cast<int64_t>(std::nearbyint(v / factor)) * factor; };
  auto floor_by = [&](double v) { return static_cast<int64_t>(std::floor(v / factor)) * factor; };
  auto ceil_by = [&](double v) { return static_cast<int64_t>(std::ceil(v / factor)) * factor; };
  int64_t h_bar = std::max<int64_t>(factor, round_by(double(height)));
  int64_t w_bar = std::max<int64_t>(factor, round_by(double(width)));
  if (h_bar * w_bar > max_pixels) {
    double beta = std::sqrt(double(height) * double(width) / double(max_pixels));
    h_bar = std::max<int64_t>(factor, floor_by(height / beta));
    w_bar = std::max<int64_t>(factor, floor_by(width / beta));
  } else if (h_bar * w_bar < min_pixels) {
    double beta = std::sqrt(double(min_pixels) / (double(height) * double(width)));
    h_bar = ceil_by(height * beta);
    w_bar = ceil_by(width * beta);
  }
  return {static_cast<int>(h_bar), static_cast<int>(w_bar)};
}

int64_t qwen2vl_video_max_pixels(int64_t nframes, int64_t total_pixels) {
  XATTN_CHECK_IN("video", nframes > 0, "qwen2vl_video_max_pixels: nframes must be > 0, got ", nframes);
  double budget = std::min(double(kQwen2VLVideoMaxPixels), double(total_pixels) / double(nframes) * 2.0);
  return static_cast<int64_t>(std::max(budget, double(static_cast<int64_t>(kQwen2VLVideoMinPixels * 1.05))));
}

at::Tensor center_crop(const at::Tensor& frames, int64_t height, int64_t width) {
  XATTN_CHECK_IN("video", frames.defined() && frames.dim() == 4, "center_crop: expected [T, H, W, C], got ",
                 frames.defined() ? shape_str(frames) : "undefined");
  XATTN_CHECK_IN("video", height > 0 && width > 0 && height <= frames.size(1) && width <= frames.size(2),
                 "center_crop: ", height, "x", width, " does not fit in ", frames.size(1), "x", frames.size(2));
  int64_t top = (frames.size(1) - height) / 2, left = (frames.size(2) - width) / 2;
  return frames.narrow(1, top, height).narrow(2, left, width);
}

at::Tensor hwc_to_chw(const at::Tensor& frames) {
  XATTN_CHECK_IN("video", frames.dim() == 4, "hwc_to_chw: expected [T, H, W, C], got ", shape_str(frames));
  return frames.permute({0, 3, 1, 2});
}

at::Tensor chw_to_hwc(const at::Tensor& frames) {
  XATTN_CHECK_IN("video", frames.dim() == 4, "chw_to_hwc: expected [T, C, H, W], got ", shape_str(frames));
  return frames.permute({0, 2, 3, 1});
}

at::Tensor to_float_chw(const at::Tensor& frames, const at::Device& device) {
  check_frames(frames, "to_float_chw");
  // Move as uint8 (4x less traffic), convert on the device.
  return hwc_to_chw(frames.to(device)).to(at::kFloat).div_(255.0).contiguous();
}

at::Tensor normalize(const at::Tensor& frames, const std::array<double, 3>& mean, const std::array<double, 3>& std) {
  XATTN_CHECK_IN("video", frames.defined() && frames.dim() == 4 && frames.size(1) == 3 &&
                              at::isFloatingType(frames.scalar_type()),
                 "normalize: expected [T, 3, H, W] floating, got ", frames.defined() ? shape_str(frames) : "undefined");
  for (double s : std) XATTN_CHECK_IN("video", s > 0, "normalize: std must be > 0, got ", s);
  auto opts = frames.options();
  at::Tensor m = at::tensor(std::vector<double>(mean.begin(), mean.end()), opts.dtype(at::kDouble)).to(opts).view({1, 3, 1, 1});
  at::Tensor s = at::tensor(std::vector<double>(std.begin(), std.end()), opts.dtype(at::kDouble)).to(opts).view({1, 3, 1, 1});
  return (frames - m) / s;
}

}  // namespace xattn::video
