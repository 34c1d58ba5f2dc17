// `xattn bench text-encoder`: a decoder LLM on the GPU (a checkpoint, or random bf16 weights in
// the LLaMA-3-8B shape) encoding a prompt as HunyuanVideo does (hidden state -3, the last two
// layers skipped), the same prompt through every layer with logits (prefill), and greedy decode
// steps with a KV cache: median time, tokens/s and peak GPU memory.
#pragma once

#include <string>

#include "core/progress.h"
#include "eval/report.h"

namespace xattn::eval {

struct TextBenchConfig {
  std::string model = "llama3-8b";  // a checkpoint folder, or llama3-8b (random weights)
  int tokens = 256;                 // prompt length
  int batch = 1;
  int decode_steps = 32;
  int warmup = 2;
  int reps = 10;
};

struct TextBenchResult {
  Table table;
  double weights_gib = 0;
  double setup_s = 0;  // loading or random initialisation
};

TextBenchResult run_text_bench(const TextBenchConfig& config, const ProgressCallback& progress = {});

}  // namespace xattn::eval
