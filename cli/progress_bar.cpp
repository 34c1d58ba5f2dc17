#include "cli/progress_bar.h"

#include <unistd.h>

#include <csignal>
#include <iostream>

#include <cmath>
#include <cstdio>

namespace xattn::cli {

std::string format_duration(double seconds) {
  if (seconds < 0 || !std::isfinite(seconds)) return "?";
  const long s = std::lround(seconds);
  char buf[32];
  if (s < 60) std::snprintf(buf, sizeof(buf), "%lds", s);
  else if (s < 3600) std::snprintf(buf, sizeof(buf), "%ld:%02ld", s / 60, s % 60);
  else std::snprintf(buf, sizeof(buf), "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
  return buf;
}

std::string ProgressBar::render(const ProgressEvent& e, int width) {
  char rate[48];
  if (e.rate >= 1.0 || e.rate == 0.0) std::snprintf(rate, sizeof(rate), "%.2f %s/s", e.rate, e.unit.c_str());
  else std::snprintf(rate, sizeof(rate), "%.2f s/%s", 1.0 / e.rate, e.unit.c_str());
  std::string line = e.task + " ";
  if (e.total > 0) {
    const double frac = std::min(1.0, std::max(0.0, static_cast<double>(e.done) / static_cast<double>(e.total)));
    const int filled = static_cast<int>(frac * width);
    line += "[" + std::string(filled, '#') + std::string(width - filled, '.') + "] ";
    line += std::to_string(e.done) + "/" + std::to_string(e.total) + " " + e.unit;
    char pct[16];
    std::snprintf(pct, sizeof(pct), " %3.0f%%", frac * 100.0);
    line += pct;
  } else {
    line += std::to_string(e.done) + " " + e.unit;
  }
  line += "  " + std::string(rate) + "  elapsed " + format_duration(e.elapsed_s);
  if (e.finished) line += "  done";
  else if (e.eta_s >= 0) line += "  ETA " + format_duration(e.eta_s);
  if (!e.note.empty()) line += "  " + e.note;
  return line;
}

ProgressBar::ProgressBar(std::ostream& out, bool tty, double interval_s)
    : out_(out), tty_(tty), interval_s_(interval_s) {}

bool ProgressBar::operator()(const ProgressEvent& e) {
  if (tty_) {
    out_ << "\r\033[K" << render(e, 30);
    if (e.finished) out_ << "\n";
    out_.flush();
    drawn_ = !e.finished;
  } else if (e.finished || e.elapsed_s - last_print_s_ >= interval_s_) {
    out_ << render(e, 20) << "\n";
    out_.flush();
    last_print_s_ = e.elapsed_s;
  }
  return !(cancel_ && cancel_->load());
}

namespace {
std::atomic<bool> g_interrupted{false};
void on_sigint(int) { g_interrupted = true; }
}  // namespace

ProgressBar& interruptible_bar() {
  static ProgressBar bar(std::cerr, isatty(2) != 0);
  bar.set_cancel_flag(&g_interrupted);
  std::signal(SIGINT, on_sigint);
  return bar;
}

}  // namespace xattn::cli
