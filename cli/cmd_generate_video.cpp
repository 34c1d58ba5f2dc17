// `xattn generate-video`: text to MP4 with HunyuanVideo (a diffusers folder or the embedded tiny
// model), dense warm-up steps and XAttention afterwards.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/progress_bar.h"
#include "core/build_info.h"
#include "core/config/config.h"
#include "core/device.h"
#include "core/error.h"
#include "core/safetensors/safetensors.h"
#include "pipelines/text_to_video.h"
#include "video/tensor.h"

namespace xattn::cli {
namespace {

namespace fs = std::filesystem;
using pipelines::GenerateConfig;
using pipelines::GenerateResult;
using pipelines::TextToVideo;

std::string fixed(double v, int d) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(d) << v;
  return s.str();
}

// <dir>/<stem><suffix> beside the output video.
std::string beside(const std::string& out, const std::string& suffix) {
  const fs::path p(out);
  return (p.parent_path() / (p.stem().string() + suffix)).string();
}

nlohmann::json record(const GenerateConfig& cfg, const GenerateResult& r, const std::string& model,
                      const std::string& device, const std::string& dtype, const std::string& out) {
  nlohmann::json steps = nlohmann::json::array();
  for (size_t i = 0; i < r.step_s.size(); ++i) {
    double d = 0, ms = 0;
    int n = 0;
    for (const auto& s : r.attention)
      if (s.step == static_cast<int>(i)) {
        ms += s.ms;
        if (!s.dense) d += s.density, ++n;
      }
    steps.push_back({{"step", i}, {"seconds", r.step_s[i]}, {"dense", n == 0}, {"density", n ? d / n : 1.0},
                     {"attention_seconds", ms / 1000.0}});
  }
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& s : r.attention)
    layers.push_back({{"step", s.step}, {"layer", s.layer}, {"dense", s.dense}, {"density", s.density}, {"ms", s.ms}});
  return {{"xattn_version", build_info().version},
          {"model", model},
          {"device", device},
          {"dtype", dtype},
          {"video", out},
          {"prompt", cfg.prompt},
          {"negative_prompt", cfg.negative_prompt},
          {"true_cfg_scale", cfg.true_cfg_scale},
          {"frames", cfg.frames},
          {"height", cfg.height},
          {"width", cfg.width},
          {"steps", cfg.steps},
          {"seed", cfg.seed},
          {"attention_mode", cfg.attention.mode},
          {"video_tokens", r.video_tokens},
          {"text_tokens", r.text_tokens},
          {"seconds",
           {{"load", r.times.load_s},
            {"text", r.times.text_s},
            {"denoise", r.times.denoise_s},
            {"vae", r.times.vae_s},
            {"total", r.times.total_s}}},
          {"mean_sparse_density", r.mean_density},
          {"attention_seconds", r.attention_s},
          {"attention_share", r.times.denoise_s > 0 ? r.attention_s / r.times.denoise_s : 0.0},
          {"per_step", steps},
          {"per_layer", layers}};
}

}  // namespace

int run_generate_video(const std::vector<std::string>& args) {
  std::string model = "tiny", out = "video.mp4", config_file, policy_file, device_text = "auto", dtype_text = "auto";
  std::string prompt, negative_prompt, true_cfg, frames, height, width, steps, seed, guidance, shift, fps, attention;
  std::vector<std::string> sets;
  bool save_latents = false, spatial_tiling = false, keep_text_on_gpu = false;
  // Defaults are GenerateConfig's (and TextToVideo::apply_tiny_defaults'), quoted here, not repeated.
  const GenerateConfig published;
  GenerateConfig tiny_cfg;
  TextToVideo::apply_tiny_defaults(tiny_cfg);
  auto geometry = [](const GenerateConfig& g) {
    return std::to_string(g.frames) + " x " + std::to_string(g.height) + " x " + std::to_string(g.width) + ", " +
           std::to_string(g.steps) + " steps";
  };
  ArgParser p("xattn generate-video --prompt TEXT [--model DIR|tiny] [--out video.mp4] [flags]",
              "Generate a video from text with HunyuanVideo: prompt encoding (LLaMA hidden states + CLIP pooled),\n"
              "flow-matching Euler denoising with the first steps dense and XAttention afterwards, VAE decode, MP4.\n"
              "Settings: the defaults (the published " + geometry(published) + "; " + geometry(tiny_cfg) +
                  " for tiny),\n"
              "then --config FILE (e.g. an earlier run.yaml), then --policy FILE, then the flags, then --set.\n"
              "Beside the video it writes <name>.run.yaml (every setting, re-runnable with --config) and\n"
              "<name>.json (times per stage, density and attention time per step and layer). Ctrl-C stops\n"
              "cleanly: no half-written MP4 is left under the final name.");
  p.flag("--model", "DIR", "diffusers HunyuanVideo folder (model_index.json, transformer/, vae/, text_encoder/, "
                           "text_encoder_2/, tokenizer/, tokenizer_2/) or tiny (embedded random-weight model)", &model);
  p.flag("--prompt", "TEXT", "what the video shows (required)", &prompt);
  p.flag("--negative-prompt", "TEXT", "what it should not show; needs --true-cfg > 1 (two transformer passes per step)",
         &negative_prompt);
  p.flag("--true-cfg", "S", "true classifier-free guidance scale (default " + fixed(published.true_cfg_scale, 0) + ": off)",
         &true_cfg);
  p.flag("--out", "FILE", "output MP4 (H.264; MPEG-4 when libx264 is missing)", &out);
  p.flag("--frames", "N", "frames, 4k + 1", &frames);
  p.flag("--height", "H", "height in pixels, a multiple of 16", &height);
  p.flag("--width", "W", "width in pixels, a multiple of 16", &width);
  p.flag("--steps", "N", "denoising steps", &steps);
  p.flag("--seed", "N", "seed of the initial noise", &seed);
  p.flag("--guidance", "G", "embedded guidance scale (default " + fixed(published.guidance, 1) + ")", &guidance);
  p.flag("--shift", "S", "flow-matching shift (default " + fixed(published.shift, 1) + ")", &shift);
  p.flag("--fps", "F", "frame rate of the MP4 (default " + fixed(published.fps, 0) + ")", &fps);
  p.flag("--attention", "MODE",
         "dense or xattention (default " + published.attention.mode + " after " +
             std::to_string(published.attention.warmup_steps) + " dense warm-up steps; " +
             std::to_string(tiny_cfg.attention.warmup_steps) + " for tiny)",
         &attention);
  p.flag("--policy", "FILE", "attention policy YAML (configs/policy/*.yaml): warm-up, tau, per-layer overrides",
         &policy_file);
  p.flag("--config", "FILE", "a whole generation config (YAML), e.g. an earlier run.yaml", &config_file);
  p.multi("--set", "KEY=VALUE", "override any setting, e.g. attention.warmup_steps=0, attention.xattention.threshold=0.95",
          &sets);
  p.toggle("--save-latents", "also write the final latents to <name>.latents.safetensors", &save_latents);
  p.toggle("--vae-tiling", "decode in 256-pixel spatial tiles (less GPU memory at 720p)", &spatial_tiling);
  p.toggle("--keep-text-encoders", "keep the text encoders on the GPU (default: moved to the CPU after encoding)",
           &keep_text_on_gpu);
  p.flag("--device", "DEV", "auto, cpu, cuda or cuda:N", &device_text);
  p.flag("--dtype", "TYPE", "auto (bf16 on GPU, fp32 on CPU), fp32, bf16 or fp16", &dtype_text);
  p.epilog("Examples:\n"
         "  xattn generate-video --prompt \"A cat walks on the grass\" --out cat.mp4              # tiny model, CPU\n"
         "  xattn generate-video --model HunyuanVideo --prompt \"...\" --frames 129 --height 720 --width 1280 \\\n"
         "      --policy configs/policy/hunyuan-xattention.yaml --vae-tiling --out cat.mp4\n"
         "  xattn generate-video --config cat.run.yaml --set attention.mode=dense --out cat-dense.mp4\n");
  if (p.parse(args)) {
    std::cout << p.help();
    return 0;
  }

  // Settings, checked before anything heavy happens.
  GenerateConfig cfg;
  if (!config_file.empty()) {
    cfg = config::load<GenerateConfig>(config_file);
  } else if (model == "tiny") {
    TextToVideo::apply_tiny_defaults(cfg);
  }
  if (!policy_file.empty()) cfg.attention = config::load<pipelines::AttentionPolicy>(policy_file);
  std::vector<std::string> overrides;
  const std::pair<const char*, std::string*> flag_keys[] = {
      {"frames", &frames}, {"height", &height},     {"width", &width}, {"steps", &steps},
      {"seed", &seed},     {"guidance", &guidance}, {"shift", &shift}, {"fps", &fps},
      {"attention.mode", &attention}, {"true_cfg_scale", &true_cfg}};
  for (const auto& fk : flag_keys)
    if (!fk.second->empty()) overrides.push_back(std::string(fk.first) + "=" + *fk.second);
  if (spatial_tiling) overrides.push_back("vae.spatial=true");
  overrides.insert(overrides.end(), sets.begin(), sets.end());
  try {
    if (!prompt.empty()) cfg.prompt = prompt;
    if (!negative_prompt.empty()) cfg.negative_prompt = negative_prompt;
    if (cfg.prompt.empty()) throw UsageError("--prompt: say what the video shows");
    cfg = config::parse<GenerateConfig>(config::to_yaml(cfg), "settings", overrides);
  } catch (const Error& e) {
    throw UsageError(e.message());
  }
  const std::string bad = config::validate(cfg, "");
  if (!bad.empty()) throw UsageError(bad);
  const fs::path out_dir = fs::path(out).parent_path();
  if (!out_dir.empty() && !fs::is_directory(out_dir)) throw UsageError("--out: no such directory: " + out_dir.string());

  pipelines::TextToVideoOptions opt;
  opt.device = parse_device(device_text);
  opt.dtype = parse_dtype(dtype_text, opt.device);
  opt.offload_text_encoders = !keep_text_on_gpu;
  ProgressBar& bar = interruptible_bar();
  TextToVideo t2v = model == "tiny" ? TextToVideo::tiny(opt) : TextToVideo::load(model, opt, bar.callback());
  const GenerateResult r = t2v.generate(cfg, bar.callback());

  video::WriterOptions wo;
  wo.fps = cfg.fps;
  const std::string codec = video::write_video_tensor(out, r.frames, wo);
  const std::string& written = out;
  config::write_yaml(cfg, beside(out, ".run.yaml"), "xattn generate-video settings; re-run with --config");
  const nlohmann::json rec = record(cfg, r, model, opt.device.str(), dtype_name(opt.dtype), written);
  {
    std::ofstream f(beside(out, ".json"), std::ios::trunc);
    if (!f) throw Error("generate-video", beside(out, ".json") + ": cannot open for writing");
    f << rec.dump(1) << "\n";
  }
  if (save_latents) safetensors::save(beside(out, ".latents.safetensors"), {{"latents", r.latents}});

  const double share = r.times.denoise_s > 0 ? 100.0 * r.attention_s / r.times.denoise_s : 0.0;
  std::cerr << "wrote " << written << ": " << r.frames.size(0) << " frames, " << r.frames.size(2) << "x"
            << r.frames.size(1) << ", " << cfg.fps << " fps, " << codec << "\n"
            << "time: load " << fixed(r.times.load_s, 1) << " s, prompt " << fixed(r.times.text_s, 1) << " s, denoise "
            << fixed(r.times.denoise_s, 1) << " s (" << cfg.steps << " steps), vae " << fixed(r.times.vae_s, 1)
            << " s, total " << fixed(r.times.total_s, 1) << " s\n"
            << "attention: " << fixed(share, 0) << "% of denoising time; "
            << (std::any_of(r.attention.begin(), r.attention.end(), [](const auto& s) { return !s.dense; })
                    ? "mean density of sparse calls " + fixed(100.0 * r.mean_density, 1) + "%"
                    : std::string("all dense"))
            << "; " << r.video_tokens << " video + " << r.text_tokens << " text tokens\n";
  std::cout << written << "\n";
  return 0;
}

}  // namespace xattn::cli
