// Small operations on packed RGB24 images (no FFmpeg, no LibTorch).
#pragma once

#include <cstdint>
#include <vector>

namespace xattn::video {

// Rotates a w x h RGB image clockwise by 90, 180 or 270 degrees into dst (h x w for 90/270).
void rotate_rgb(const uint8_t* src, int w, int h, int clockwise_degrees, uint8_t* dst);

// Copies a w x h image into a (w + pad_w) x (h + pad_h) one, repeating the last column/row.
std::vector<uint8_t> pad_edge_rgb(const uint8_t* src, int w, int h, int pad_w, int pad_h);

// Area-average downscale of a w x h image to tw x th (tw <= w, th <= h), for thumbnails.
void downscale_area_rgb(const uint8_t* src, int w, int h, uint8_t* dst, int tw, int th, int dst_stride);

}  // namespace xattn::video
