// A video app's use of the library: load a text-to-video pipeline once, generate several clips
// with a progress callback, and write them as MP4s.
//
//   build/bin/xattn_example_text_to_video [MODEL_DIR|tiny] [OUT_DIR]
#include <iostream>
#include <string>

#include "core/error.h"
#include "pipelines/text_to_video.h"
#include "video/tensor.h"

int main(int argc, char** argv) {
  using namespace xattn::pipelines;
  const std::string model = argc > 1 ? argv[1] : "tiny";
  const std::string out_dir = argc > 2 ? argv[2] : ".";
  try {
    TextToVideoOptions opt;  // CPU fp32 here; {at::kCUDA, at::kBFloat16} on a GPU
    TextToVideo t2v = model == "tiny" ? TextToVideo::tiny(opt) : TextToVideo::load(model, opt);
    const char* prompts[] = {"A paper boat drifts down a rainy street.", "Fireflies over a dark meadow."};
    int i = 0;
    for (const char* prompt : prompts) {
      GenerateConfig cfg;
      if (model == "tiny") TextToVideo::apply_tiny_defaults(cfg);
      cfg.prompt = prompt;
      cfg.frames = 9;
      cfg.steps = 4;
      cfg.seed = i;
      const GenerateResult r = t2v.generate(cfg, [&](const xattn::ProgressEvent& e) {
        if (e.finished) std::cerr << "  " << e.task << " done in " << e.elapsed_s << " s\n";
        return true;  // false cancels (xattn::Cancelled is thrown)
      });
      const std::string path = out_dir + "/clip" + std::to_string(i++) + ".mp4";
      xattn::video::write_video_tensor(path, r.frames);  // uint8 [T, H, W, 3]
      std::cout << path << ": " << r.frames.size(0) << " frames, attention "
                << static_cast<int>(100 * r.attention_s / r.times.denoise_s) << "% of denoising\n";
    }
  } catch (const xattn::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
