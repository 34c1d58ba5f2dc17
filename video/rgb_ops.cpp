#include "video/rgb_ops.h"

#include <cstring>

#include "core/error.h"

namespace xattn::video {

void rotate_rgb(const uint8_t* src, int w, int h, int deg, uint8_t* dst) {
  auto px = [&](int y, int x) { return src + (static_cast<int64_t>(y) * w + x) * 3; };
  switch (deg) {
    case 90:  // dst is h wide, w high: dst(y, x) = src(h-1-x, y)
      for (int y = 0; y < w; ++y)
        for (int x = 0; x < h; ++x) std::memcpy(dst + (static_cast<int64_t>(y) * h + x) * 3, px(h - 1 - x, y), 3);
      break;
    case 180:
      for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
          std::memcpy(dst + (static_cast<int64_t>(y) * w + x) * 3, px(h - 1 - y, w - 1 - x), 3);
      break;
    case 270:  // dst(y, x) = src(x, w-1-y)
      for (int y = 0; y < w; ++y)
        for (int x = 0; x < h; ++x) std::memcpy(dst + (static_cast<int64_t>(y) * h + x) * 3, px(x, w - 1 - y), 3);
      break;
    case 0:
      std::memcpy(dst, src, static_cast<size_t>(w) * h * 3);
      break;
    default:
      throw Error("video", str_cat("rotation must be 0, 90, 180 or 270 degrees, got ", deg));
  }
}

std::vector<uint8_t> pad_edge_rgb(const uint8_t* src, int w, int h, int pad_w, int pad_h) {
  int ow = w + pad_w, oh = h + pad_h;
  std::vector<uint8_t> out(static_cast<size_t>(ow) * oh * 3);
  for (int y = 0; y < oh; ++y) {
    const uint8_t* row = src + static_cast<int64_t>(y < h ? y : h - 1) * w * 3;
    uint8_t* o = out.data() + static_cast<int64_t>(y) * ow * 3;
    std::memcpy(o, row, static_cast<size_t>(w) * 3);
    for (int x = w; x < ow; ++x) std::memcpy(o + x * 3, row + (w - 1) * 3, 3);
  }
  return out;
}

void downscale_area_rgb(const uint8_t* src, int w, int h, uint8_t* dst, int tw, int th, int dst_stride) {
  for (int y = 0; y < th; ++y) {
    int y0 = static_cast<int>(static_cast<int64_t>(y) * h / th);
    int y1 = static_cast<int>(static_cast<int64_t>(y + 1) * h / th);
    if (y1 <= y0) y1 = y0 + 1;
    for (int x = 0; x < tw; ++x) {
      int x0 = static_cast<int>(static_cast<int64_t>(x) * w / tw);
      int x1 = static_cast<int>(static_cast<int64_t>(x + 1) * w / tw);
      if (x1 <= x0) x1 = x0 + 1;
      uint32_t acc[3] = {0, 0, 0};
      for (int yy = y0; yy < y1; ++yy)
        for (int xx = x0; xx < x1; ++xx)
          for (int c = 0; c < 3; ++c) acc[c] += src[(static_cast<int64_t>(yy) * w + xx) * 3 + c];
      uint32_t n = static_cast<uint32_t>((y1 - y0) * (x1 - x0));
      for (int c = 0; c < 3; ++c) dst[static_cast<int64_t>(y) * dst_stride + x * 3 + c] = static_cast<uint8_t>((acc[c] + n / 2) / n);
    }
  }
}

}  // namespace xattn::video
