// xattn probe-video: a video's metadata and, with --sample, the frames a sampling rule picks.
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/progress_bar.h"
#include "video/reader.h"
#include "video/writer.h"

namespace xattn::cli {

namespace {
std::atomic<bool> g_probe_interrupted{false};
void on_probe_sigint(int) { g_probe_interrupted = true; }

std::string fixed(double v, int decimals) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(decimals) << v;
  return os.str();
}
}  // namespace

int run_probe_video(const std::vector<std::string>& args) {
  std::string file, sample, dump;
  bool json = false, count = false, no_rotate = false;
  int threads = 0;
  ArgParser p("xattn probe-video FILE [--sample SPEC] [--dump DIR] [--json]",
              "Show a video's container, codec, size, rotation, frame rate, duration and frame count. With\n"
              "--sample, also list the frames a sampling rule picks (presentation-order index and time);\n"
              "with --dump, decode those frames and write them as PNG plus a contact sheet.");
  p.positional("FILE", "the video file", &file);
  p.flag("--sample", "SPEC",
         "uniform:N (round(linspace(0, n-1, N))), uniform-interior:N (floor(i*n/(N+1)), VideoMME), fps:F,\n"
         "qwen2vl[:fps=2,min=4,max=768], times:T1,T2,.. (seconds), indices:I,J,.., all",
         &sample);
  p.flag("--dump", "DIR", "write the sampled frames as DIR/frame_NNNNN.png and DIR/contact_sheet.png", &dump);
  p.toggle("--count", "count frames exactly by scanning the packets (implied by --sample and --dump)", &count);
  p.flag("--threads", "N", "decoder threads (0 = one per core)", &threads);
  p.toggle("--no-rotate", "ignore rotation metadata (frames as stored)", &no_rotate);
  p.toggle("--json", "print one JSON object instead of text", &json);
  p.epilog(
      "examples:\n"
      "  xattn probe-video clip.mp4\n"
      "  xattn probe-video clip.mp4 --sample qwen2vl --json\n"
      "  xattn probe-video clip.mp4 --sample uniform:16 --dump frames/\n");
  if (p.parse(args)) {
    std::cout << p.help();
    return 0;
  }
  if (!dump.empty() && sample.empty()) sample = "uniform:16";
  video::SamplingSpec spec;
  if (!sample.empty()) spec = video::SamplingSpec::parse(sample);  // UsageError on bad specs

  video::ReaderOptions ro;
  ro.threads = threads;
  ro.apply_rotation = !no_rotate;
  video::VideoReader reader(file, ro);
  std::vector<int64_t> indices;
  std::vector<double> times;
  if (count || !sample.empty()) {
    const video::Timeline& tl = reader.timeline();
    if (!sample.empty()) {
      indices = video::sample_indices(spec, tl);
      // Microsecond resolution: enough for any container, and no 0.6000000000000001 in the JSON.
      for (int64_t i : indices) times.push_back(std::round(tl.times[i] * 1e6) / 1e6);
    }
  }
  std::vector<std::string> written;
  std::string sheet;
  if (!dump.empty()) {
    ProgressBar bar(std::cerr, isatty(2) != 0);
    bar.set_cancel_flag(&g_probe_interrupted);
    std::signal(SIGINT, on_probe_sigint);
    video::Frames frames = reader.read(indices, video::ReadMode::kSeek, bar.callback());
    written = video::write_pngs(dump, video::view_of(frames));
    sheet = (std::filesystem::path(dump) / "contact_sheet.png").string();
    video::write_contact_sheet(sheet, video::view_of(frames));
  }

  const video::VideoInfo& v = reader.info();
  if (json) {
    nlohmann::ordered_json j;
    j["file"] = v.path;
    j["container"] = v.container;
    j["stream_index"] = v.stream_index;
    j["codec"] = v.codec;
    j["pixel_format"] = v.pixel_format;
    j["width"] = v.width;
    j["height"] = v.height;
    j["coded_width"] = v.coded_width;
    j["coded_height"] = v.coded_height;
    j["rotation"] = v.rotation;
    j["avg_fps"] = v.avg_fps;
    j["real_fps"] = v.real_fps;
    j["duration_s"] = v.duration;
    j["frame_count"] = v.frame_count;
    j["frame_count_exact"] = v.frame_count_exact;
    j["bit_rate"] = v.bit_rate;
    j["has_audio"] = v.has_audio;
    if (!sample.empty()) {
      j["sample"] = {{"spec", spec.str()}, {"count", indices.size()}, {"indices", indices}, {"times_s", times}};
    }
    if (!dump.empty()) j["dump"] = {{"frames", written}, {"contact_sheet", sheet}};
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  auto row = [](const std::string& k, const std::string& val) {
    std::cout << std::left << std::setw(12) << k << val << "\n";
  };
  row("file", v.path);
  row("container", v.container);
  row("video", "stream #" + std::to_string(v.stream_index) + ", " + v.codec + ", " + v.pixel_format);
  std::string size = std::to_string(v.width) + "x" + std::to_string(v.height);
  if (v.rotation != 0)
    size += " (stored " + std::to_string(v.coded_width) + "x" + std::to_string(v.coded_height) + ", rotated " +
            std::to_string(v.rotation) + " degrees clockwise" + (no_rotate ? "; ignored" : "") + ")";
  row("size", size);
  row("frame rate", fixed(v.avg_fps, 3) + " average, " + fixed(v.real_fps, 3) + " real");
  row("duration", fixed(v.duration, 3) + " s");
  row("frames", std::to_string(v.frame_count) + (v.frame_count_exact ? "" : " (estimated; --count to count)"));
  row("bit rate", v.bit_rate > 0 ? fixed(v.bit_rate / 1e6, 2) + " Mb/s" : "unknown");
  row("audio", v.has_audio ? "yes" : "no");
  if (!sample.empty()) {
    row("sample", spec.str() + " -> " + std::to_string(indices.size()) + " frames");
    std::cout << "  index      time_s\n";
    for (size_t i = 0; i < indices.size(); ++i)
      std::cout << "  " << std::left << std::setw(10) << indices[i] << " " << fixed(times[i], 3) << "\n";
  }
  if (!dump.empty()) row("dumped", std::to_string(written.size()) + " PNG files and " + sheet);
  return 0;
}

}  // namespace xattn::cli
