#include <unistd.h>

#include <algorithm>

#include <atomic>
#include <csignal>
#include <fstream>
#include <iostream>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/progress_bar.h"
#include "core/config/config.h"
#include "eval/bench_cases.h"
#include "eval/density.h"
#ifdef XATTN_WITH_CUDA
#include "eval/bench_attention.h"
#include "eval/bench_scoring.h"
#include "eval/bench_t2v.h"
#include "eval/bench_text.h"
#endif
#include "eval/proxy.h"
#ifdef XATTN_WITH_VIDEO
#include "eval/bench_video.h"
#endif

namespace xattn::cli {

namespace {

const char* kRoutines =
    "routines:\n"
    "  proxy      compare block-score estimators (antidiagonal, diagonal, mean-pooled, random, exact)\n"
    "             at equal density on synthetic video, LLM and random workloads (CPU is fine)\n"
    "  density    XAttention density and recall over thresholds on a synthetic workload (CPU is fine)\n"
#ifdef XATTN_WITH_CUDA
    "  scoring    CUDA scoring, selection and estimate time vs cuDNN dense attention (GPU)\n"
    "  attention  block-sparse attention kernel vs cuDNN / FlashAttention-2 (GPU)\n"
    "  text-encoder  decoder LLM encode / prefill / decode time and memory, LLaMA-3-8B shape (GPU)\n"
    "  t2v-step   one full-size HunyuanVideo denoising step, dense (cuDNN) vs XAttention, + VAE decode (GPU)\n"
#endif
#ifdef XATTN_WITH_VIDEO
    "  video      sparse frame sampling vs decoding every frame on a long H.264 file\n"
#endif
    ;

// -o FORMAT and --out FILE, shared by every routine: the table goes to stdout (and FILE).
struct TableOutput {
  std::string format = "md";
  std::string file;
  void add_flags(ArgParser& p) {
    p.flag("-o", "FORMAT", "output format: md, csv or json", &format);
    p.flag("--out", "FILE", "also write the table to FILE", &file);
  }
  // Parses args into p. True (after printing the help) when the help was asked for; otherwise
  // checks -o before any work.
  bool parse(ArgParser& p, const std::vector<std::string>& args) const {
    if (p.parse(args)) {
      std::cout << p.help();
      return true;
    }
    if (format != "md" && format != "csv" && format != "json")
      throw UsageError("-o: expected md, csv or json, got '" + format + "'");
    return false;
  }
  void emit(const std::string& text) const {
    std::cout << text;
    if (!file.empty()) {
      std::ofstream f(file, std::ios::trunc);
      if (!f) throw Error("bench", file + ": cannot open for writing");
      f << text;
    }
  }
};

int run_proxy_cmd(const std::vector<std::string>& args) {
  eval::ProxyConfig cfg;
  TableOutput out;
  bool head_kinds = false;
  ArgParser p("xattn bench proxy [flags]",
              "Compare block-score estimators at equal density: each method keeps, per row, as many blocks as\n"
              "XAttention's threshold selection kept. Reports density, the share of the true attention mass\n"
              "the kept blocks hold (recall), and the output's relative L2 error against dense attention.");
  p.flag("--size", "S", "workload size: small (~2-4K tokens) or medium (~8-12K tokens)", &cfg.size);
  p.flag("--stride", "N", "antidiagonal stride", &cfg.stride);
  p.flag("--threshold", "TAU", "XAttention threshold that sets the density", &cfg.threshold);
  out.add_flags(p);
  p.toggle("--head-kinds", "also print XAttention's density and recall per head kind", &head_kinds);
  int seed = 0;
  p.flag("--seed", "N", "workload seed", &seed);
  if (out.parse(p, args)) return 0;
  if (cfg.size != "small" && cfg.size != "medium") throw UsageError("--size: expected small or medium, got '" + cfg.size + "'");
  cfg.seed = static_cast<uint64_t>(seed);
  ProgressBar& bar = interruptible_bar();
  const eval::ProxyResult r = eval::run_proxy(cfg, bar.callback());
  std::string text = r.estimators.render(out.format);
  if (head_kinds) text += (out.format == "md" ? "\n" : "") + r.head_kinds.render(out.format);
  out.emit(text);
  return 0;
}
int run_density_cmd(const std::vector<std::string>& args) {
  std::string config_file;
  TableOutput out;
  std::vector<std::string> sets;
  ArgParser p("xattn bench density [--config FILE] [--set key=value ...] [-o md|csv|json]",
              "Generate a synthetic workload and report the share of blocks XAttention keeps, per head kind.\n"
              "Settings come from the DensityBench config (defaults, then --config FILE, then --set).");
  p.flag("--config", "FILE", "YAML file with DensityBench settings (e.g. configs/density/video-720p.yaml)",
         &config_file);
  p.multi("--set", "KEY=VALUE", "override a setting, e.g. --set video.peak_margin=5 --set threshold=0.95", &sets);
  out.add_flags(p);
  std::string keys;
  for (const auto& d : config::describe<eval::DensityBench>())
    keys += "  " + d.path + " (" + d.type + ", default " + d.default_value + "): " + d.help + "\n";
  p.epilog("settings:\n" + keys);
  if (out.parse(p, args)) return 0;
  const eval::DensityBench cfg = config_file.empty() ? config::from_overrides<eval::DensityBench>(sets)
                                                     : config::load<eval::DensityBench>(config_file, sets);
  ProgressBar& bar = interruptible_bar();
  out.emit(eval::run_density(cfg, bar.callback()).render(out.format));
  return 0;
}
#ifdef XATTN_WITH_CUDA
// "a,b,,c" -> {a, b, c}
std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (char ch : s + ",") {
    if (ch == ',') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur += ch;
    }
  }
  return out;
}

// --cases help for the scoring and attention benches (the same case list), with each one's default.
std::string cases_help(const std::string& defaults) {
  return "comma-separated cases: causal-8k..causal-128k (Hq 32, Hkv 8), video-720p, full-16k..full-64k "
         "(non-causal, 24 heads) (default: " + defaults + ")";
}

// --ab NAME=VALUE,...: the kernel switches a bench also times each of our calls under.
std::vector<std::string> ab_settings(const std::string& list) {
  std::vector<std::string> out = split_list(list);
  for (const auto& x : out) {
    const size_t eq = x.find('=');
    if (eq == 0 || eq == std::string::npos) throw UsageError("--ab: expected NAME=VALUE, got '" + x + "'");
  }
  return out;
}
constexpr const char* kAbHelp =
    "also time our calls under these settings (e.g. XATTN_ATTENTION_PINGPONG=0), interleaved with the defaults";

void check_cases(const std::vector<std::string>& cases) {
  const auto names = eval::bench_case_names();
  for (const auto& c : cases)
    if (std::find(names.begin(), names.end(), c) == names.end()) throw UsageError("--cases: unknown case '" + c + "'");
}

int run_scoring_cmd(const std::vector<std::string>& args) {
  eval::ScoringBenchConfig cfg;
  std::string cases, strides, ab;
  TableOutput out;
  bool no_check = false;
  ArgParser p("xattn bench scoring [--cases A,B] [--strides 8,16] [-o md|csv|json]",
              "Time the CUDA antidiagonal scoring and block selection kernels and cuDNN dense attention on the\n"
              "same random bf16 inputs (head_dim 128) in one process: scoring alone, selection alone, and the\n"
              "estimate (both in one call, as estimate() runs them: on Hopper the scoring launch's last kernel\n"
              "also selects the rows, so it takes less than the two apart; XATTN_SCORING_FUSED=0 keeps them\n"
              "apart); report the estimate's share of cuDNN's time and how many blocks of its mask agree with\n"
              "the ATen reference selection. On Hopper each row tile's keys are split over several\n"
              "CTAs so that L2 holds the queries they share; XATTN_SCORING_SPLIT=N sets the number of parts\n"
              "(1 = no split; default: from the GPU's SM count, e.g. 7 at stride 8 on an H100).\n"
              "Inputs TMA can load (lengths that are multiples of the stride) take the kernel with three\n"
              "warpgroups (192 query groups per CTA); XATTN_SCORING_WARPGROUPS=2 selects the 128-group one.");
  p.flag("--cases", "LIST", cases_help("causal-8k..causal-128k, video-720p"), &cases);
  p.flag("--strides", "LIST", "comma-separated strides (default: 8,16)", &strides);
  p.flag("--ab", "NAME=VALUE,...", kAbHelp, &ab);
  p.flag("--threshold", "TAU", "selection threshold", &cfg.threshold);
  p.flag("--reps", "N", "timed repetitions (median reported)", &cfg.reps);
  p.flag("--warmup", "N", "untimed warm-up runs", &cfg.warmup);
  p.toggle("--no-check", "skip the match rate against the ATen reference", &no_check);
  out.add_flags(p);
  if (out.parse(p, args)) return 0;
  if (!cases.empty()) cfg.cases = split_list(cases);
  if (!strides.empty()) {
    cfg.strides.clear();
    for (const auto& x : split_list(strides)) {
      try {
        cfg.strides.push_back(std::stoi(x));
      } catch (...) {
        throw UsageError("--strides: expected integers, got '" + x + "'");
      }
    }
  }
  cfg.ab = ab_settings(ab);
  check_cases(cfg.cases);
  cfg.check = !no_check;
  ProgressBar& bar = interruptible_bar();
  out.emit(eval::run_scoring_bench(cfg, bar.callback()).render(out.format));
  return 0;
}
int run_attention_cmd(const std::vector<std::string>& args) {
  eval::AttentionBenchConfig cfg;
  std::string cases, densities, ab;
  TableOutput out;
  ArgParser p("xattn bench attention [--cases A,B] [-o md|csv|json]",
              "Time our block-sparse attention (every block kept, top-ratio masks at --densities, and\n"
              "the whole estimate + attend call) and LibTorch SDPA's cuDNN and FlashAttention-2 dense backends\n"
              "on the same random bf16 inputs (head_dim 128) in one process. Effective TF/s counts the FLOPs of\n"
              "the computed blocks. video-720p also runs tau 0.9 threshold selection on the synthetic video\n"
              "workload tuned to ~35% density. XATTN_ATTENTION_KERNEL=mma_sync|wgmma|wgmma_inline|wgmma_cp_async\n"
              "forces a kernel generation (default: wgmma fed by TMA from a producer warpgroup on Hopper;\n"
              "wgmma_inline: TMA issued by a consumer thread, the previous generation).");
  p.flag("--cases", "LIST", cases_help("causal-32k,causal-128k,video-720p"), &cases);
  p.flag("--densities", "LIST", "comma-separated top-ratio densities in (0, 1] (default: 0.1,0.25,0.35,0.5)",
         &densities);
  p.flag("--stride", "N", "stride of the estimate in the full call", &cfg.stride);
  p.flag("--ab", "NAME=VALUE,...", kAbHelp, &ab);
  p.flag("--reps", "N", "timed repetitions (median reported)", &cfg.reps);
  p.flag("--warmup", "N", "untimed warm-up runs", &cfg.warmup);
  out.add_flags(p);
  if (out.parse(p, args)) return 0;
  if (!cases.empty()) cfg.cases = split_list(cases);
  cfg.ab = ab_settings(ab);
  if (!densities.empty()) {
    cfg.densities.clear();
    for (const auto& x : split_list(densities)) {
      double d = 0;
      try {
        size_t used = 0;
        d = std::stod(x, &used);
        if (used != x.size()) d = 0;
      } catch (...) {
      }
      if (!(d > 0 && d <= 1)) throw UsageError("--densities: expected numbers in (0, 1], got '" + x + "'");
      cfg.densities.push_back(d);
    }
  }
  check_cases(cfg.cases);
  ProgressBar& bar = interruptible_bar();
  out.emit(eval::run_attention_bench(cfg, bar.callback()).render(out.format));
  return 0;
}
int run_t2v_cmd(const std::vector<std::string>& args) {
  eval::T2vBenchConfig cfg;
  TableOutput out;
  bool no_vae = false;
  ArgParser p("xattn bench t2v-step [--policy FILE] [--top-ratio R] [-o md|csv|json]",
              "One denoising step of the full-size HunyuanVideo transformer (24 x 128 heads, 20 dual + 40 single\n"
              "blocks, random bf16 weights) at 720 x 1280 x 129 frames: dense with cuDNN SDPA, then XAttention (a\n"
              "top-ratio 35% selection unless --policy gives one), each with the time inside attention and the\n"
              "peak GPU memory; then one spatially + temporally tiled VAE decode of the latents.");
  p.flag("--frames", "N", "frames (4k + 1)", &cfg.frames);
  p.flag("--height", "H", "height (multiple of 16)", &cfg.height);
  p.flag("--width", "W", "width (multiple of 16)", &cfg.width);
  p.flag("--policy", "FILE", "AttentionPolicy YAML for the sparse step (its warm-up is ignored)", &cfg.policy);
  p.flag("--top-ratio", "R", "share of blocks kept per row without --policy", &cfg.top_ratio);
  p.flag("--layers", "N", "dual and single blocks each (default: the published 20 and 40)", &cfg.layers);
  p.toggle("--no-vae", "skip the VAE decode", &no_vae);
  out.add_flags(p);
  if (out.parse(p, args)) return 0;
  cfg.vae = !no_vae;
  ProgressBar& bar = interruptible_bar();
  out.emit(eval::run_t2v_bench(cfg, bar.callback()).render(out.format));
  return 0;
}
int run_text_cmd(const std::vector<std::string>& args) {
  eval::TextBenchConfig cfg;
  TableOutput out;
  ArgParser p("xattn bench text-encoder [--model DIR|llama3-8b] [--tokens N] [-o md|csv|json]",
              "Time a decoder LLM in bf16 on the GPU: encoding a prompt as HunyuanVideo does (hidden state -3;\n"
              "the last two layers are skipped), a prefill through every layer with logits, and greedy decode\n"
              "steps with a KV cache. Reports median ms, tokens/s and the peak GPU memory of each run. The\n"
              "default model is random weights in the published LLaMA-3-8B shape (no download needed).");
  p.flag("--model", "DIR", "checkpoint folder (config.json + safetensors), or llama3-8b for random weights", &cfg.model);
  p.flag("--tokens", "N", "prompt length", &cfg.tokens);
  p.flag("--batch", "N", "prompts per run", &cfg.batch);
  p.flag("--decode-steps", "N", "greedy steps timed after the prompt (0: none)", &cfg.decode_steps);
  p.flag("--reps", "N", "timed repetitions (median reported)", &cfg.reps);
  p.flag("--warmup", "N", "untimed warm-up runs", &cfg.warmup);
  out.add_flags(p);
  if (out.parse(p, args)) return 0;
  ProgressBar& bar = interruptible_bar();
  const eval::TextBenchResult r = eval::run_text_bench(cfg, bar.callback());
  std::cerr << "weights " << eval::fmt(r.weights_gib, 2) << " GiB, set up in " << eval::fmt(r.setup_s, 1) << " s\n";
  out.emit(r.table.render(out.format));
  return 0;
}
#endif
#ifdef XATTN_WITH_VIDEO
int run_video_cmd(const std::vector<std::string>& args) {
  eval::VideoBenchConfig cfg;
  TableOutput out;
  ArgParser p("xattn bench video [--input FILE | --minutes M --height H] [--sample SPEC] [-o md|csv|json]",
              "Time sampling frames from a long video two ways on fresh readers: seeking to the keyframe before\n"
              "each wanted frame (and skipping unreferenced frames), and decoding every frame from the start.\n"
              "Both must return identical frames. Without --input, an H.264 MP4 (16:9, CRF 23, preset veryfast,\n"
              "fixed GOP) is generated first; --keep FILE stores it for later runs.");
  p.flag("--input", "FILE", "an existing video to sample", &cfg.input);
  p.flag("--keep", "FILE", "write the generated video here and reuse it when it exists", &cfg.keep);
  p.flag("--minutes", "M", "length of the generated video", &cfg.minutes);
  p.flag("--height", "H", "height of the generated video (width = 16:9)", &cfg.height);
  p.flag("--fps", "F", "frame rate of the generated video", &cfg.fps);
  p.flag("--gop", "SECONDS", "keyframe interval of the generated video", &cfg.gop_seconds);
  p.flag("--sample", "SPEC", "frames to sample: uniform:N, uniform-interior:N, fps:F, qwen2vl, indices:..", &cfg.sample);
  p.flag("--threads", "N", "decoder threads (0 = one per core)", &cfg.threads);
  out.add_flags(p);
  if (out.parse(p, args)) return 0;
  if (cfg.input.empty() && (cfg.minutes <= 0 || cfg.height < 16 || cfg.fps <= 0 || cfg.gop_seconds <= 0))
    throw UsageError("bench video: --minutes, --fps and --gop must be > 0 and --height >= 16");
  ProgressBar& bar = interruptible_bar();
  const eval::VideoBenchResult r = eval::run_video_bench(cfg, bar.callback());
  out.emit(r.table().render(out.format));
  if (!r.identical) throw Error("bench", "sparse and full decoding returned different frames");
  return 0;
}
#endif
}  // namespace

int run_bench(const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::cout << "usage: xattn bench <routine> [flags]\n\nBenchmarks and studies; tables on stdout "
                 "(-o md|csv|json), progress on stderr.\n\n"
              << kRoutines << "\n`xattn bench <routine> --help` for a routine's flags.\n";
    if (args.empty()) throw UsageError("bench: no routine given");
    return 0;
  }
  const std::string routine = args[0];
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (routine == "proxy") return run_proxy_cmd(rest);
  if (routine == "density") return run_density_cmd(rest);
#ifdef XATTN_WITH_CUDA
  if (routine == "scoring") return run_scoring_cmd(rest);
  if (routine == "attention") return run_attention_cmd(rest);
  if (routine == "text-encoder") return run_text_cmd(rest);
  if (routine == "t2v-step") return run_t2v_cmd(rest);
#endif
#ifdef XATTN_WITH_VIDEO
  if (routine == "video") return run_video_cmd(rest);
#endif
#ifndef XATTN_WITH_CUDA
  for (const char* gpu : {"scoring", "attention", "text-encoder", "t2v-step"})
    if (routine == gpu)
      throw UsageError("bench " + routine + " needs a CUDA GPU and this xattn was built without CUDA (`xattn info`)");
#endif
#ifndef XATTN_WITH_VIDEO
  if (routine == "video") throw UsageError("bench video needs FFmpeg and this xattn was built without it (`xattn info`)");
#endif
  const std::string near = closest(routine, {"proxy", "density", "scoring", "attention", "text-encoder", "t2v-step", "video"});
  throw UsageError("bench: unknown routine '" + routine + "'" + (near.empty() ? "" : " (did you mean " + near + "?)"));
}

}  // namespace xattn::cli
