// Decoded RGB frames without LibTorch: the currency of the FFmpeg layer.
//
// `rgb` holds `count` frames of height x width x 3 bytes, row-major, frames back to back
// (the layout of a [T, H, W, 3] uint8 tensor). video/tensor.h turns Frames into a tensor
// without copying.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <utility>
#include <vector>

namespace xattn::video {

// Frame memory (see FrameAllocator).
void* frame_alloc(std::size_t bytes);
void frame_free(void* p) noexcept;

// Allocator for frame buffers: large buffers (>= 4 MiB) are 2 MiB aligned and marked for
// transparent huge pages (a 64-frame 720p batch is 177 MB; with 4 KiB pages its first touch
// alone took ~0.5 s on our CI machine, with huge pages ~0.07 s), and resize() leaves new bytes
// uninitialised instead of zero-filling them (decoding overwrites every byte).
template <class T>
struct FrameAllocator {
  using value_type = T;
  FrameAllocator() = default;
  template <class U>
  FrameAllocator(const FrameAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) { return static_cast<T*>(frame_alloc(n * sizeof(T))); }
  void deallocate(T* p, std::size_t) noexcept { frame_free(p); }
  template <class U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};
template <class T, class U>
bool operator==(const FrameAllocator<T>&, const FrameAllocator<U>&) { return true; }
template <class T, class U>
bool operator!=(const FrameAllocator<T>&, const FrameAllocator<U>&) { return false; }

using FrameBuffer = std::vector<uint8_t, FrameAllocator<uint8_t>>;

struct Frames {
  int64_t count = 0;
  int height = 0;
  int width = 0;
  FrameBuffer rgb;                // [count, height, width, 3]
  std::vector<int64_t> indices;   // frame index (presentation order) of each frame
  std::vector<double> times;      // presentation time of each frame, seconds from stream start

  int64_t frame_bytes() const { return int64_t(height) * width * 3; }
  uint8_t* frame(int64_t i) { return rgb.data() + i * frame_bytes(); }
  const uint8_t* frame(int64_t i) const { return rgb.data() + i * frame_bytes(); }
};

// A borrowed view of frames to encode: `count` frames of height x width x 3 bytes.
struct FrameView {
  const uint8_t* rgb = nullptr;
  int64_t count = 0;
  int height = 0;
  int width = 0;
};

inline FrameView view_of(const Frames& f) { return {f.rgb.data(), f.count, f.height, f.width}; }

}  // namespace xattn::video
