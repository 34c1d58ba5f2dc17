// Progress reporting for long work (denoising steps, decoding, benchmarks).
//
// Library code takes a ProgressCallback and reports through a Progress object; the CLI
// turns events into a bar (TTY) or periodic lines. A callback that returns false asks
// the work to stop: Progress::update() then throws xattn::Cancelled.
//
//   xattn::Progress p(callback, "denoise", steps, "step");
//   for (int i = 0; i < steps; ++i) { run_step(i); p.update(i + 1); }
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

namespace xattn {

struct ProgressEvent {
  std::string task;    // "denoise", "decode", ...
  std::string unit;    // "step", "frame", ...
  int64_t done = 0;
  int64_t total = 0;   // 0 when unknown
  double elapsed_s = 0.0;
  double rate = 0.0;   // units per second over the whole task so far
  double eta_s = -1.0; // -1 when unknown
  bool finished = false;
  std::string note;    // short free text ("density 0.34")
};

// Return false to request cancellation.
using ProgressCallback = std::function<bool(const ProgressEvent&)>;

class Progress {
 public:
  using Clock = std::chrono::steady_clock;

  Progress(ProgressCallback callback, std::string task, int64_t total, std::string unit = "it");

  // Reports `done` units complete. Throws xattn::Cancelled if the callback returns false.
  void update(int64_t done, const std::string& note = "");
  // Reports completion (done = total) once.
  void finish(const std::string& note = "");

  // For tests: replace the clock.
  void set_clock_for_testing(std::function<Clock::time_point()> now) { now_ = std::move(now); start_ = now_(); }

  ProgressEvent make_event(int64_t done, const std::string& note) const;

 private:
  ProgressCallback callback_;
  std::string task_;
  std::string unit_;
  int64_t total_;
  std::function<Clock::time_point()> now_;
  Clock::time_point start_;
  bool finished_ = false;
};

}  // namespace xattn
