#include "cli/commands.h"

namespace xattn::cli {

const std::vector<Command>& commands() {
  static const std::vector<Command> table = {
      {"info", "show version, LibTorch, CUDA devices and compiled features", run_info},
#if defined(XATTN_WITH_TEXT) && defined(XATTN_WITH_VIDEO)
      {"generate-video", "text to MP4 with HunyuanVideo (a diffusers folder or the embedded tiny model) and XAttention",
       run_generate_video},
#endif
#ifdef XATTN_WITH_VIDEO
      {"probe-video", "a video's metadata and the frames a sampling rule picks (--dump writes PNGs)",
       run_probe_video},
#endif
      {"bench", "benchmarks and studies: proxy, density, scoring, attention, text-encoder, t2v-step, video", run_bench},
  };
  return table;
}

}  // namespace xattn::cli
