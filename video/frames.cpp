#include "video/frames.h"

#include <cstdlib>
#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace xattn::video {

void* frame_alloc(std::size_t bytes) {
  constexpr std::size_t kHuge = std::size_t(2) << 20;
  if (bytes >= 2 * kHuge) {
    std::size_t rounded = (bytes + kHuge - 1) / kHuge * kHuge;
    void* p = std::aligned_alloc(kHuge, rounded);
    if (!p) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    madvise(p, rounded, MADV_HUGEPAGE);  // advisory; ignored where THP is off
#endif
    return p;
  }
  void* p = std::malloc(bytes ? bytes : 1);
  if (!p) throw std::bad_alloc();
  return p;
}

void frame_free(void* p) noexcept { std::free(p); }

}  // namespace xattn::video
