#include "eval/bench_t2v.h"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>

#include <chrono>
#include <memory>

#include "core/config/config.h"
#include "core/device.h"
#include "core/error.h"
#include "eval/gpu_timing.h"
#include "pipelines/attention_policy.h"
#include "pipelines/hunyuan/transformer.h"
#include "pipelines/hunyuan/vae.h"

namespace xattn::eval {

Table run_t2v_bench(const T2vBenchConfig& cfg, const ProgressCallback& progress) {
  if (!at::hasCUDA()) throw Error("bench", "t2v-step: needs a CUDA GPU");
  if ((cfg.frames - 1) % 4 || cfg.height % 16 || cfg.width % 16)
    throw Error("bench", "t2v-step: frames must be 4k + 1 and sizes multiples of 16");
  const c10::DeviceIndex dev = at::cuda::current_device();
  const at::Device device(at::kCUDA, dev);
  const auto bf = at::TensorOptions().dtype(at::kBFloat16).device(device);
  hunyuan::TransformerConfig tc;
  if (cfg.layers >= 0) tc.num_layers = tc.num_single_layers = cfg.layers;
  Progress prog(progress, "t2v-step", 5, "run");
  const hunyuan::Transformer dit = hunyuan::Transformer::random(tc, {device, at::kBFloat16}, 1);
  prog.update(1, "weights");

  const int64_t T = (cfg.frames - 1) / 4 + 1, h = cfg.height / 8, w = cfg.width / 8;
  at::Tensor latents = at::randn({1, 16, T, h, w}, bf);
  hunyuan::TransformerInputs in{latents, at::full({1}, 970.0, bf), at::randn({1, cfg.text_tokens, tc.text_embed_dim}, bf),
                                at::ones({1, cfg.text_tokens}, at::TensorOptions().dtype(at::kLong).device(device)),
                                at::randn({1, tc.pooled_projection_dim}, bf), at::full({1}, 6000.0, bf)};
  const int64_t tokens = T * (h / 2) * (w / 2) + cfg.text_tokens;

  pipelines::AttentionPolicy sparse;
  if (!cfg.policy.empty()) {
    sparse = config::load<pipelines::AttentionPolicy>(cfg.policy);
  } else {
    sparse.xattention.selection = "top_ratio";
    sparse.xattention.top_ratio = cfg.top_ratio;
  }
  sparse.warmup_steps = 0;
  pipelines::AttentionPolicy dense;
  dense.mode = "dense";

  // Warm-up on a small grid (kernels, cuDNN plans, allocator).
  {
    hunyuan::TransformerInputs small = in;
    small.latents = at::randn({1, 16, 2, 16, 16}, bf);
    pipelines::PolicyAttention a(sparse, 1, false);
    dit.forward(small, [&](const pipelines::LayerId& id, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                           const attention::AttentionOptions& o) { return a(id, q, k, v, o); });
    const SdpaBackendOnly only("cudnn");  // the dense baseline
    dit.forward(small);
    device_synchronize(device);
  }

  Table t;
  for (const char* c : {"run", "tokens", "density", "step s", "attention s", "attention share", "vs dense", "peak GiB"})
    t.add_column(c, std::string(c) != "run");
  double dense_s = 0;
  for (int pass = 0; pass < 2; ++pass) {
    const bool is_dense = pass == 0;
    pipelines::PolicyAttention a(is_dense ? dense : sparse, 1, /*time_calls=*/true);
    c10::cuda::CUDACachingAllocator::resetPeakStats(dev);
    device_synchronize(device);
    const auto t0 = std::chrono::steady_clock::now();
    {
      std::unique_ptr<SdpaBackendOnly> only(is_dense ? new SdpaBackendOnly("cudnn") : nullptr);
      dit.forward(in, [&](const pipelines::LayerId& id, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                          const attention::AttentionOptions& o) { return a(id, q, k, v, o); });
      device_synchronize(device);
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (is_dense) dense_s = s;
    const double attn_s = a.attention_ms() / 1000.0;
    t.rows.push_back({is_dense ? "dense step (cuDNN SDPA)" : "XAttention step (estimate + sparse attend)",
                      std::to_string(tokens), fmt(is_dense ? 1.0 : a.mean_sparse_density(), 3), fmt(s, 2),
                      fmt(attn_s, 2), fmt(attn_s / s, 2), fmt(s / dense_s, 3), fmt(peak_gib(dev), 1)});
    prog.update(2 + pass, is_dense ? "dense" : "sparse");
  }

  if (cfg.vae) {
    const hunyuan::VaeDecoder vae = hunyuan::VaeDecoder::random({}, {device, at::kBFloat16}, 2);
    hunyuan::VaeTiling tiling;
    tiling.spatial = true;
    c10::cuda::CUDACachingAllocator::resetPeakStats(dev);
    device_synchronize(device);
    const auto t0 = std::chrono::steady_clock::now();
    const at::Tensor video = vae.decode(latents, tiling);
    device_synchronize(device);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    t.rows.push_back({"VAE decode, tiled (" + std::to_string(video.size(2)) + "x" + std::to_string(video.size(3)) + "x" +
                          std::to_string(video.size(4)) + ")",
                      "", "", fmt(s, 2), "", "", "", fmt(peak_gib(dev), 1)});
  }
  prog.finish();
  return t;
}

}  // namespace xattn::eval
