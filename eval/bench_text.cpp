#include "eval/bench_text.h"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>

#include <chrono>

#include "core/error.h"
#include "eval/gpu_timing.h"
#include "pipelines/text/decoder_lm.h"

namespace xattn::eval {

TextBenchResult run_text_bench(const TextBenchConfig& cfg, const ProgressCallback& progress) {
  if (!at::hasCUDA()) throw Error("bench", "text-encoder: needs a CUDA GPU");
  if (cfg.tokens < 1 || cfg.batch < 1 || cfg.decode_steps < 0)
    throw Error("bench", "text-encoder: --tokens and --batch must be >= 1, --decode-steps >= 0");
  const c10::DeviceIndex dev = at::cuda::current_device();
  const text::ModelOptions mo{at::Device(at::kCUDA, dev), at::kBFloat16};
  TextBenchResult r;
  const auto t0 = std::chrono::steady_clock::now();
  Progress prog(progress, "text-encoder", 4, "run");
  const text::DecoderLM lm = cfg.model == "llama3-8b" ? text::DecoderLM::random(text::DecoderConfig::llama3_8b(), mo, 1)
                                                      : text::DecoderLM::load(cfg.model, mo);
  at::cuda::getCurrentCUDAStream().synchronize();
  r.setup_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.weights_gib = static_cast<double>(lm.parameter_bytes()) / (1024.0 * 1024.0 * 1024.0);

  const int64_t vocab = lm.config().vocab_size;
  const at::Tensor ids = at::randint(0, vocab, {cfg.batch, cfg.tokens}, at::TensorOptions().dtype(at::kLong).device(mo.device));
  Table& t = r.table;
  t.add_column("run", false);
  t.add_column("tokens", true);
  t.add_column("median ms", true);
  t.add_column("tokens/s", true);
  t.add_column("peak GiB", true);
  auto row = [&](const std::string& name, int64_t tokens, double ms) {
    t.rows.push_back({name, std::to_string(tokens), fmt(ms, 2), fmt(static_cast<double>(tokens) / (ms / 1000.0), 0),
                      fmt(peak_gib(dev), 2)});
  };

  // 1. Encode: HF hidden_states[-3], as HunyuanVideo takes it (layers past it are not run).
  prog.update(1, "encode");
  c10::cuda::CUDACachingAllocator::resetPeakStats(dev);
  text::DecoderLM::ForwardOptions enc;
  enc.logits = false;
  enc.hidden_states = {-3};
  row("encode (hidden state -3)", cfg.batch * cfg.tokens, median_ms([&] { lm.forward(ids, enc); }, cfg.warmup, cfg.reps));

  // 2. Prefill: every layer, logits of the last position, KV cache filled.
  prog.update(2, "prefill");
  c10::cuda::CUDACachingAllocator::resetPeakStats(dev);
  const int64_t cap = cfg.tokens + cfg.decode_steps + 1;
  text::KVCache cache = lm.new_cache(cfg.batch, cap);
  text::DecoderLM::ForwardOptions pre;
  pre.cache = &cache;
  pre.last_position_logits = true;
  row("prefill (all layers, logits)", cfg.batch * cfg.tokens, median_ms([&] {
        cache.length = 0;
        lm.forward(ids, pre);
      }, cfg.warmup, cfg.reps));

  // 3. Greedy decode steps after the prompt, one token per row per step.
  if (cfg.decode_steps > 0) {
    prog.update(3, "decode");
    at::Tensor next = at::zeros({cfg.batch, 1}, ids.options());
    const double ms = median_ms([&] {
      cache.length = 0;
      lm.forward(ids, pre);
      for (int64_t s = 0; s < cfg.decode_steps; ++s)
        next = lm.forward(next, pre).logits.argmax(-1);
    }, 1, std::max(1, cfg.reps / 3));
    // Report the decode part alone: subtract one prefill.
    const double prefill = median_ms([&] {
      cache.length = 0;
      lm.forward(ids, pre);
    }, 1, std::max(1, cfg.reps / 3));
    row("decode step (KV cache, ms per step)", cfg.batch, (ms - prefill) / static_cast<double>(cfg.decode_steps));
  }
  prog.finish();
  return r;
}

}  // namespace xattn::eval
