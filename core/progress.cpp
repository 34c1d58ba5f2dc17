#include "core/progress.h"

#include "core/error.h"

namespace xattn {

Progress::Progress(ProgressCallback callback, std::string task, int64_t total, std::string unit)
    : callback_(std::move(callback)),
      task_(std::move(task)),
      unit_(std::move(unit)),
      total_(total),
      now_([] { return Clock::now(); }),
      start_(now_()) {}

ProgressEvent Progress::make_event(int64_t done, const std::string& note) const {
  ProgressEvent e;
  e.task = task_;
  e.unit = unit_;
  e.done = done;
  e.total = total_;
  e.elapsed_s = std::chrono::duration<double>(now_() - start_).count();
  e.rate = e.elapsed_s > 0 ? static_cast<double>(done) / e.elapsed_s : 0.0;
  if (total_ > 0 && done > 0 && e.rate > 0) e.eta_s = static_cast<double>(total_ - done) / e.rate;
  e.note = note;
  return e;
}

void Progress::update(int64_t done, const std::string& note) {
  if (!callback_) return;
  if (!callback_(make_event(done, note))) throw Cancelled();
}

void Progress::finish(const std::string& note) {
  if (finished_) return;
  finished_ = true;
  if (!callback_) return;
  ProgressEvent e = make_event(total_ > 0 ? total_ : 0, note);
  e.finished = true;
  e.eta_s = 0.0;
  if (!callback_(e)) throw Cancelled();
}

}  // namespace xattn
