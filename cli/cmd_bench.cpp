#include <unistd.h>

#include <atomic>
#include <csignal>
#include <fstream>
#include <iostream>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/progress_bar.h"
#include "core/config/config.h"
#include "eval/density.h"
#include "eval/proxy.h"

namespace xattn::cli {

namespace {
std::atomic<bool> g_interrupted{false};
void on_sigint(int) { g_interrupted = true; }

const char* kRoutines =
    "routines:\n"
    "  proxy     compare block-score estimators (antidiagonal, diagonal, mean-pooled, random, exact)\n"
    "            at equal density on synthetic video, LLM and random workloads (CPU is fine)\n";

void emit(const std::string& text, const std::string& out_file) {
  std::cout << text;
  if (!out_file.empty()) {
    std::ofstream f(out_file, std::ios::trunc);
    if (!f) throw Error("bench", out_file + ": cannot open for writing");
    f << text;
  }
}

int run_proxy_cmd(const std::vector<std::string>& args) {
  eval::ProxyConfig cfg;
  std::string format = "md", out_file;
  bool head_kinds = false;
  ArgParser p("xattn bench proxy [flags]",
              "Compare block-score estimators at equal density: each method keeps, per row, as many blocks as\n"
              "XAttention's threshold selection kept. Reports density, the share of the true attention mass\n"
              "the kept blocks hold (recall), and the output's relative L2 error against dense attention.");
  p.flag("--size", "S", "workload size: small (~2-4K tokens) or medium (~8-12K tokens)", &cfg.size);
  p.flag("--stride", "N", "antidiagonal stride", &cfg.stride);
  p.flag("--threshold", "TAU", "XAttention threshold that sets the density", &cfg.threshold);
  p.flag("-o", "FORMAT", "output format: md, csv or json", &format);
  p.flag("--out", "FILE", "also write the table to FILE", &out_file);
  p.toggle("--head-kinds", "also print XAttention's density and recall per head kind", &head_kinds);
  int seed = 0;
  p.flag("--seed", "N", "workload seed", &seed);
  if (p.parse(args)) {
    std::cout << p.help();
    return 0;
  }
  if (format != "md" && format != "csv" && format != "json")
    throw UsageError("-o: expected md, csv or json, got '" + format + "'");
  if (cfg.size != "small" && cfg.size != "medium") throw UsageError("--size: expected small or medium, got '" + cfg.size + "'");
  cfg.seed = static_cast<uint64_t>(seed);
  ProgressBar bar(std::cerr, isatty(2) != 0);
  bar.set_cancel_flag(&g_interrupted);
  std::signal(SIGINT, on_sigint);
  const eval::Table t = eval::run_proxy(cfg, bar.callback());
  std::string text = t.render(format);
  if (head_kinds) text += (format == "md" ? "\n" : "") + eval::run_proxy_head_kinds(cfg, bar.callback()).render(format);
  emit(text, out_file);
  return 0;
}
int run_density_cmd(const std::vector<std::string>& args) {
  std::string config_file, format = "md", out_file;
  std::vector<std::string> sets;
  ArgParser p("xattn bench density [--config FILE] [--set key=value ...] [-o md|csv|json]",
              "Generate a synthetic workload and report the share of blocks XAttention keeps, per head kind.\n"
              "Settings come from the DensityBench config (defaults, then --config FILE, then --set).");
  p.flag("--config", "FILE", "YAML file with DensityBench settings (e.g. configs/density/video-720p.yaml)",
         &config_file);
  p.multi("--set", "KEY=VALUE", "override a setting, e.g. --set video.peak_margin=5 --set threshold=0.95", &sets);
  p.flag("-o", "FORMAT", "output format: md, csv or json", &format);
  p.flag("--out", "FILE", "also write the table to FILE", &out_file);
  std::string keys;
  for (const auto& d : config::describe<eval::DensityBench>())
    keys += "  " + d.path + " (" + d.type + ", default " + d.default_value + "): " + d.help + "\n";
  p.epilog("settings:\n" + keys);
  if (p.parse(args)) {
    std::cout << p.help();
    return 0;
  }
  if (format != "md" && format != "csv" && format != "json")
    throw UsageError("-o: expected md, csv or json, got '" + format + "'");
  const eval::DensityBench cfg = config_file.empty() ? config::from_overrides<eval::DensityBench>(sets)
                                                     : config::load<eval::DensityBench>(config_file, sets);
  ProgressBar bar(std::cerr, isatty(2) != 0);
  bar.set_cancel_flag(&g_interrupted);
  std::signal(SIGINT, on_sigint);
  emit(eval::run_density(cfg, bar.callback()).render(format), out_file);
  return 0;
}
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
  const std::string near = closest(routine, {"proxy", "density"});
  throw UsageError("bench: unknown routine '" + routine + "'" + (near.empty() ? "" : " (did you mean " + near + "?)"));
}

}  // namespace xattn::cli
