#include "video/sampling.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <sstream>

#include "core/error.h"

namespace xattn::video {

double Timeline::duration() const {
  if (times.empty()) return 0.0;
  double step = avg_fps > 0 ? 1.0 / avg_fps : 0.0;
  return times.back() + step;
}

int64_t Timeline::frame_at(double t) const {
  // A relative tolerance keeps k/fps that lands exactly on a frame time from slipping to the
  // previous frame through rounding.
  double eps = 1e-9 * std::max(1.0, std::fabs(t));
  auto it = std::upper_bound(times.begin(), times.end(), t + eps);
  if (it == times.begin()) return 0;
  return static_cast<int64_t>(it - times.begin()) - 1;
}

namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream is(s);
  while (std::getline(is, cur, sep)) out.push_back(cur);
  return out;
}

int64_t parse_int(const std::string& text, const std::string& what) {
  char* end = nullptr;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0')
    throw UsageError(str_cat("sampling: ", what, ": expected an integer, got '", text, "'"));
  return v;
}

double parse_double(const std::string& text, const std::string& what) {
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !std::isfinite(v))
    throw UsageError(str_cat("sampling: ", what, ": expected a number, got '", text, "'"));
  return v;
}

const char* kForms =
    "all | indices:I,J,... | times:T1,T2,... (seconds) | uniform:N | uniform-interior:N | fps:F | "
    "qwen2vl[:fps=F,min=N,max=N]";

}  // namespace

SamplingSpec SamplingSpec::parse(const std::string& text) {
  SamplingSpec s;
  auto colon = text.find(':');
  std::string name = text.substr(0, colon);
  std::string arg = colon == std::string::npos ? "" : text.substr(colon + 1);
  bool has_arg = colon != std::string::npos;
  auto need_arg = [&] {
    if (!has_arg || arg.empty())
      throw UsageError(str_cat("sampling: '", text, "' needs a value after ':' (forms: ", kForms, ")"));
  };
  if (name == "all") {
    if (has_arg) throw UsageError(str_cat("sampling: 'all' takes no value, got '", text, "'"));
    s.method = SampleMethod::kAll;
  } else if (name == "indices") {
    need_arg();
    s.method = SampleMethod::kIndices;
    for (const auto& part : split(arg, ',')) {
      int64_t v = parse_int(part, "indices");
      if (v < 0) throw UsageError(str_cat("sampling: indices must be >= 0, got ", v));
      s.indices.push_back(v);
    }
  } else if (name == "times") {
    need_arg();
    s.method = SampleMethod::kTimes;
    for (const auto& part : split(arg, ',')) {
      double v = parse_double(part, "times");
      if (v < 0) throw UsageError(str_cat("sampling: times must be >= 0, got ", part));
      s.times.push_back(v);
    }
  } else if (name == "uniform" || name == "uniform-interior") {
    need_arg();
    s.method = name == "uniform" ? SampleMethod::kUniform : SampleMethod::kUniformInterior;
    s.count = parse_int(arg, name);
    if (s.count < 1) throw UsageError(str_cat("sampling: ", name, " needs N >= 1, got ", s.count));
  } else if (name == "fps") {
    need_arg();
    s.method = SampleMethod::kFps;
    s.fps = parse_double(arg, "fps");
    if (s.fps <= 0) throw UsageError(str_cat("sampling: fps must be > 0, got ", arg));
  } else if (name == "qwen2vl") {
    s.method = SampleMethod::kQwen2VL;
    if (has_arg) {
      need_arg();
      for (const auto& kv : split(arg, ',')) {
        auto eq = kv.find('=');
        if (eq == std::string::npos)
          throw UsageError(str_cat("sampling: qwen2vl options are key=value (fps, min, max), got '", kv, "'"));
        std::string k = kv.substr(0, eq), v = kv.substr(eq + 1);
        if (k == "fps") s.fps = parse_double(v, "qwen2vl fps");
        else if (k == "min") s.min_frames = parse_int(v, "qwen2vl min");
        else if (k == "max") s.max_frames = parse_int(v, "qwen2vl max");
        else throw UsageError(str_cat("sampling: unknown qwen2vl option '", k, "' (fps, min, max)"));
      }
    }
    if (s.fps <= 0 || s.min_frames < 1 || s.max_frames < s.min_frames)
      throw UsageError(str_cat("sampling: qwen2vl needs fps > 0 and 1 <= min <= max, got fps=", s.fps,
                               " min=", s.min_frames, " max=", s.max_frames));
  } else {
    throw UsageError(str_cat("sampling: unknown method '", name, "' (forms: ", kForms, ")"));
  }
  return s;
}

std::string SamplingSpec::str() const {
  std::ostringstream os;
  switch (method) {
    case SampleMethod::kAll: os << "all"; break;
    case SampleMethod::kIndices:
      os << "indices:";
      for (size_t i = 0; i < indices.size(); ++i) os << (i ? "," : "") << indices[i];
      break;
    case SampleMethod::kTimes:
      os << "times:";
      for (size_t i = 0; i < times.size(); ++i) os << (i ? "," : "") << times[i];
      break;
    case SampleMethod::kUniform: os << "uniform:" << count; break;
    case SampleMethod::kUniformInterior: os << "uniform-interior:" << count; break;
    case SampleMethod::kFps: os << "fps:" << fps; break;
    case SampleMethod::kQwen2VL:
      os << "qwen2vl:fps=" << fps << ",min=" << min_frames << ",max=" << max_frames;
      break;
  }
  return os.str();
}

int64_t qwen2vl_frame_count(int64_t total, double video_fps, double fps, int64_t min_frames,
                            int64_t max_frames) {
  constexpr int64_t kFactor = 2;
  XATTN_CHECK_IN("sampling", total >= kFactor, "qwen2vl sampling needs at least ", kFactor,
                 " frames, the video has ", total);
  XATTN_CHECK_IN("sampling", video_fps > 0, "qwen2vl sampling needs the video's frame rate, got ", video_fps);
  int64_t lo = (min_frames + kFactor - 1) / kFactor * kFactor;
  int64_t hi = std::min(max_frames, total) / kFactor * kFactor;
  double n = static_cast<double>(total) / video_fps * fps;
  n = std::min(std::min(std::max(n, static_cast<double>(lo)), static_cast<double>(hi)),
               static_cast<double>(total));
  int64_t frames = static_cast<int64_t>(std::floor(n / kFactor)) * kFactor;
  return std::max<int64_t>(frames, kFactor);
}

namespace {
// round(linspace(0, total-1, n)) with round-half-to-even, as numpy/torch do.
std::vector<int64_t> linspace_round(int64_t total, int64_t n) {
  std::vector<int64_t> out(n);
  if (n == 1) {
    out[0] = 0;
    return out;
  }
  double step = static_cast<double>(total - 1) / static_cast<double>(n - 1);
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<int64_t>(std::nearbyint(step * i));
  return out;
}
}  // namespace

std::vector<int64_t> sample_indices(const SamplingSpec& spec, const Timeline& tl) {
  int64_t total = tl.size();
  XATTN_CHECK_IN("sampling", total > 0, "the video has no frames to sample");
  std::vector<int64_t> out;
  switch (spec.method) {
    case SampleMethod::kAll:
      out.resize(total);
      for (int64_t i = 0; i < total; ++i) out[i] = i;
      break;
    case SampleMethod::kIndices:
      for (int64_t i : spec.indices) {
        XATTN_CHECK_IN("sampling", i >= 0 && i < total, "frame index ", i, " is out of range [0, ", total, ")");
        out.push_back(i);
      }
      break;
    case SampleMethod::kTimes:
      for (double t : spec.times) {
        XATTN_CHECK_IN("sampling", t >= 0 && t < tl.duration(), "time ", t, " s is outside the video [0, ",
                       tl.duration(), ") s");
        out.push_back(tl.frame_at(t));
      }
      break;
    case SampleMethod::kUniform:
      out = linspace_round(total, spec.count);
      break;
    case SampleMethod::kUniformInterior:
      for (int64_t i = 1; i <= spec.count; ++i) out.push_back(i * total / (spec.count + 1));
      break;
    case SampleMethod::kFps: {
      double dur = tl.duration();
      for (int64_t k = 0;; ++k) {
        double t = static_cast<double>(k) / spec.fps;
        if (t >= dur - 1e-9) break;
        out.push_back(tl.frame_at(t));
      }
      break;
    }
    case SampleMethod::kQwen2VL: {
      int64_t n = qwen2vl_frame_count(total, tl.avg_fps, spec.fps, spec.min_frames, spec.max_frames);
      out = linspace_round(total, n);
      break;
    }
  }
  return out;
}

}  // namespace xattn::video
