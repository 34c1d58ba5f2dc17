// Which frames to decode: explicit indices, timestamps, uniform N (two conventions), fixed
// fps, and Qwen2-VL's rule. Pure arithmetic over a frame timeline; no FFmpeg here, so the
// rules are testable on their own.
//
//   auto spec = SamplingSpec::parse("qwen2vl:fps=2");
//   std::vector<int64_t> idx = sample_indices(spec, reader.timeline());
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace xattn::video {

// Presentation times (seconds from the first frame, ascending) of every frame of a stream.
struct Timeline {
  std::vector<double> times;
  double avg_fps = 0.0;   // the container's average frame rate (used by index-based rules)
  int64_t size() const { return static_cast<int64_t>(times.size()); }
  double duration() const;  // last time + one average frame interval
  // Index of the frame shown at time t: the last frame with time <= t (the first frame for t
  // before it).
  int64_t frame_at(double t) const;
};

enum class SampleMethod {
  kAll,              // "all": every frame
  kIndices,          // "indices:0,10,20"
  kTimes,            // "times:0.5,1.25" (seconds): the frame shown at each time
  kUniform,          // "uniform:N": round(linspace(0, total-1, N)) — decord/Qwen2-VL convention
  kUniformInterior,  // "uniform-interior:N": floor(i*total/(N+1)), i=1..N — VideoMME convention
  kFps,              // "fps:F": the frame shown at t = k/F, k = 0,1,... while t < duration
  kQwen2VL,          // "qwen2vl[:fps=2,min=4,max=768]": Qwen2-VL's smart_nframes + uniform
};

struct SamplingSpec {
  SampleMethod method = SampleMethod::kAll;
  int64_t count = 0;                 // uniform*
  double fps = 2.0;                  // fps, qwen2vl
  int64_t min_frames = 4;            // qwen2vl
  int64_t max_frames = 768;          // qwen2vl
  std::vector<int64_t> indices;      // indices
  std::vector<double> times;         // times

  // Parses the forms listed above; throws xattn::UsageError naming the problem.
  static SamplingSpec parse(const std::string& text);
  std::string str() const;
};

// The frame count Qwen2-VL samples from a video of `total` frames at `video_fps`:
// total/video_fps*fps clamped to [ceil2(min_frames), floor2(min(max_frames, total))], then
// floored to a multiple of 2. Throws when the video has fewer than 2 frames.
int64_t qwen2vl_frame_count(int64_t total, double video_fps, double fps, int64_t min_frames,
                            int64_t max_frames);

// Frame indices (presentation order, may repeat for short videos) chosen by `spec`.
// Throws xattn::Error for an empty timeline or out-of-range explicit indices.
std::vector<int64_t> sample_indices(const SamplingSpec& spec, const Timeline& timeline);

}  // namespace xattn::video
