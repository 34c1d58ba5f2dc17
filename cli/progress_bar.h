// Draws ProgressEvents on stderr: a redrawn bar with rate and ETA on a terminal, plain
// lines at most every `interval_s` seconds otherwise (logs, CI).
#pragma once

#include <atomic>
#include <chrono>
#include <ostream>
#include <string>

#include "core/progress.h"

namespace xattn::cli {

std::string format_duration(double seconds);  // "42s", "3:07", "1:02:03"

class ProgressBar {
 public:
  ProgressBar(std::ostream& out, bool tty, double interval_s = 5.0);
  // Makes the callback return false (cancel) once *flag becomes true (e.g. on SIGINT).
  void set_cancel_flag(const std::atomic<bool>* flag) { cancel_ = flag; }
  bool operator()(const ProgressEvent& e);
  ProgressCallback callback() {
    return [this](const ProgressEvent& e) { return (*this)(e); };
  }
  // The text of one bar line (no carriage return), for tests.
  static std::string render(const ProgressEvent& e, int width);

 private:
  std::ostream& out_;
  bool tty_;
  double interval_s_;
  double last_print_s_ = -1e9;
  bool drawn_ = false;
  const std::atomic<bool>* cancel_ = nullptr;
};

// The process's progress bar on stderr; Ctrl-C (SIGINT) turns into a clean cancel: the callback
// returns false and the library throws xattn::Cancelled at its next progress report.
ProgressBar& interruptible_bar();

}  // namespace xattn::cli
