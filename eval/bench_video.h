// `xattn bench video`: sparse frame sampling (seek to the keyframe before each wanted frame,
// skip unreferenced frames) against decoding every frame, on one long H.264 file, checking
// that both return identical frames.
#pragma once

#include <string>

#include "core/progress.h"
#include "eval/report.h"

namespace xattn::eval {

struct VideoBenchConfig {
  std::string input;          // existing file; empty: generate one
  std::string keep;           // where to write (and reuse) the generated file; empty: temp, deleted
  double minutes = 10.0;      // generated length
  int height = 720;           // generated size (16:9)
  double fps = 24.0;
  double gop_seconds = 2.0;
  std::string sample = "uniform:64";
  int threads = 0;            // decoder threads, 0 = one per core
};

struct VideoBenchResult {
  std::string file, sample;
  double duration_s = 0;
  int64_t frames = 0, sampled = 0;
  int width = 0, height = 0;
  double generate_s = 0;      // 0 when the file was given or reused
  double sparse_s = 0, full_s = 0;
  double scan_s = 0;           // part of sparse_s: opening and the packet scan (timeline)
  int64_t sparse_decoded = 0, sparse_seeks = 0, full_decoded = 0;
  bool identical = false;
  Table table() const;
};

VideoBenchResult run_video_bench(const VideoBenchConfig& config, const ProgressCallback& progress);

}  // namespace xattn::eval
