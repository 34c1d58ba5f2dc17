#include "pipelines/text_to_video.h"

#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <filesystem>
#include <sstream>

#include "core/device.h"
#include "core/error.h"
#include "pipelines/flow_match.h"
#include "pipelines/hunyuan/tiny/tiny_assets.h"
#include "pipelines/text/hf_model_util.h"

namespace xattn::pipelines {
namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

}  // namespace

std::string GenerateConfig::check() const {
  std::ostringstream e;
  if (prompt.empty()) e << "prompt: empty (say what the video shows)";
  else if ((frames - 1) % 4 != 0) e << "frames: " << frames << " is not 4k + 1 (e.g. " << ((frames - 1) / 4) * 4 + 1 << " or " << ((frames - 1) / 4 + 1) * 4 + 1 << ")";
  else if (height % 16 != 0) e << "height: " << height << " is not a multiple of 16";
  else if (!negative_prompt.empty() && !(true_cfg_scale > 1.0))
    e << "negative_prompt: used only with true_cfg_scale > 1 (true classifier-free guidance); set both";
  else if (width % 16 != 0) e << "width: " << width << " is not a multiple of 16";
  else return attention.check();
  return e.str();
}

// ---------------------------------------------------------------------------------------------
// Loading

TextToVideo TextToVideo::load(const std::string& dir, const Options& o, const ProgressCallback& progress) {
  namespace fs = std::filesystem;
  const auto t0 = Clock::now();
  const fs::path d(dir);
  if (!fs::is_directory(d)) throw Error("model", dir + ": not a directory (expected a diffusers HunyuanVideo folder)");
  // Every part is checked before any weight is read.
  std::vector<std::string> missing;
  for (const char* f : {"model_index.json", "transformer/config.json", "vae/config.json", "text_encoder/config.json",
                        "text_encoder_2/config.json", "tokenizer/tokenizer.json"})
    if (!fs::exists(d / f)) missing.push_back(f);
  if (!fs::exists(d / "tokenizer_2" / "tokenizer.json") &&
      (!fs::exists(d / "tokenizer_2" / "vocab.json") || !fs::exists(d / "tokenizer_2" / "merges.txt")))
    missing.push_back("tokenizer_2/vocab.json + merges.txt");
  if (!missing.empty()) {
    std::string list;
    for (const auto& m : missing) list += "\n  " + m;
    throw Error("model", dir + ": not a complete HunyuanVideo folder; missing:" + list);
  }
  // Configs, then every tensor's name and shape against the checkpoints' headers (no weight read).
  hunyuan::Transformer::check_checkpoint((d / "transformer").string());
  hunyuan::VaeDecoder::check_checkpoint((d / "vae").string());
  text::DecoderLM::check_checkpoint((d / "text_encoder").string());
  text::ClipTextEncoder::check_checkpoint((d / "text_encoder_2").string());

  Progress prog(progress, "load", 3, "part");
  TextToVideo t;
  t.opt_ = o;
  t.name_ = dir;
  const hunyuan::ModelOptions on_device{o.device, o.dtype};
  const hunyuan::ModelOptions text_home{o.offload_text_encoders ? at::Device(at::kCPU) : o.device, o.dtype};
  t.text_ = std::make_unique<hunyuan::TextEncoder>(hunyuan::TextEncoder::load(dir, text_home));
  prog.update(1, "text encoders");
  t.dit_ = std::make_unique<hunyuan::Transformer>(hunyuan::Transformer::load((d / "transformer").string(), on_device));
  prog.update(2, "transformer");
  t.vae_ = std::make_unique<hunyuan::VaeDecoder>(hunyuan::VaeDecoder::load((d / "vae").string(), on_device));
  prog.finish("vae");
  t.load_s_ = since(t0);
  return t;
}

void TextToVideo::apply_tiny_defaults(GenerateConfig& cfg) {
  cfg.frames = 17;
  cfg.height = 128;
  cfg.width = 128;
  cfg.steps = 8;
  cfg.attention.warmup_steps = 2;
  cfg.attention.xattention.block_size = 64;
}

TextToVideo TextToVideo::tiny(const Options& o) {
  const auto t0 = Clock::now();
  const hunyuan::ModelOptions mo{o.device, o.dtype};
  text::DecoderConfig llm;
  llm.model_type = "llama";
  llm.vocab_size = 705;
  llm.hidden_size = 32;
  llm.intermediate_size = 64;
  llm.num_layers = 3;
  llm.num_heads = 4;
  llm.num_kv_heads = 2;
  llm.head_dim = 8;
  llm.rms_norm_eps = 1e-5;
  llm.rope.theta = 500000.0;
  text::ClipTextConfig clip;
  clip.vocab_size = 734;
  clip.hidden_size = 16;
  clip.intermediate_size = 32;
  clip.num_layers = 2;
  clip.num_heads = 2;
  hunyuan::TransformerConfig dit;
  dit.num_heads = 2;
  dit.head_dim = 16;
  dit.num_layers = 2;
  dit.num_single_layers = 2;
  dit.num_refiner_layers = 1;
  dit.text_embed_dim = llm.hidden_size;
  dit.pooled_projection_dim = clip.hidden_size;
  dit.rope_axes_dim = {4, 6, 6};
  hunyuan::VaeConfig vae;
  vae.block_out_channels = {8, 8, 16, 16};
  vae.layers_per_block = 1;
  vae.norm_num_groups = 4;

  TextToVideo t;
  t.opt_ = o;
  t.name_ = "tiny";
  t.text_ = std::make_unique<hunyuan::TextEncoder>(
      text::BpeTokenizer::from_json(hunyuan::tiny::kLlmTokenizerJson, "tiny/tokenizer.json"),
      text::DecoderLM::random(llm, mo, 101),
      text::ClipTokenizer::from_bpe(
          text::BpeTokenizer::from_clip_texts(hunyuan::tiny::kClipVocabJson, hunyuan::tiny::kClipMerges, "tiny/vocab.json")),
      text::ClipTextEncoder::random(clip, mo, 102));
  t.dit_ = std::make_unique<hunyuan::Transformer>(hunyuan::Transformer::random(dit, mo, 103));
  t.vae_ = std::make_unique<hunyuan::VaeDecoder>(hunyuan::VaeDecoder::random(vae, mo, 104));
  t.load_s_ = since(t0);
  return t;
}

// ---------------------------------------------------------------------------------------------
// Generation

GenerateResult TextToVideo::generate(const GenerateConfig& cfg, const ProgressCallback& progress) {
  const std::string bad = config::validate(cfg, "");
  if (!bad.empty()) throw Error("generate", bad);
  const auto t_all = Clock::now();
  GenerateResult r;
  r.times.load_s = load_s_;
  const at::Device dev = opt_.device;
  const at::ScalarType dt = opt_.dtype;

  // 1. Prompt.
  auto t0 = Clock::now();
  Progress text_prog(progress, "encode prompt", 1, "prompt");
  const bool move_text = opt_.offload_text_encoders && !dev.is_cpu();
  if (move_text) text_->to(dev);
  hunyuan::PromptEmbeddings emb = text_->encode({cfg.prompt});
  const bool true_cfg = !cfg.negative_prompt.empty() && cfg.true_cfg_scale > 1.0;
  hunyuan::PromptEmbeddings neg;
  if (true_cfg) neg = text_->encode({cfg.negative_prompt});
  if (move_text) text_->to(at::kCPU);
  text_prog.finish();
  r.times.text_s = since(t0);

  // 2. Denoising.
  const int64_t T = (cfg.frames - 1) / 4 + 1, h = cfg.height / 8, w = cfg.width / 8;
  const int64_t C = dit_->config().in_channels;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(cfg.seed));
  at::Tensor latents = at::randn({1, C, T, h, w}, gen, at::TensorOptions().dtype(at::kFloat)).to(dev);
  r.video_tokens = T / dit_->config().patch_size_t * (h / dit_->config().patch_size) * (w / dit_->config().patch_size);
  r.text_tokens = emb.mask.sum().item<int64_t>();
  const FlowMatchEuler sched(cfg.steps, cfg.shift);
  const at::Tensor guidance = at::full({1}, cfg.guidance, at::TensorOptions().dtype(dt).device(dev)) * 1000.0;
  PolicyAttention attn(cfg.attention, cfg.steps, opt_.time_attention);
  const hunyuan::AttentionFn hook = [&attn](const LayerId& id, const at::Tensor& q, const at::Tensor& k,
                                            const at::Tensor& v, const attention::AttentionOptions& o) {
    return attn(id, q, k, v, o);
  };
  t0 = Clock::now();
  Progress steps(progress, "denoise", cfg.steps, "step");
  for (int i = 0; i < cfg.steps; ++i) {
    const auto ts = Clock::now();
    attn.begin_step(i);
    hunyuan::TransformerInputs in{latents.to(dt), at::full({1}, sched.timestep(i), latents.options()), emb.states,
                                  emb.mask, emb.pooled, guidance};
    at::Tensor v = dit_->forward(in, hook);
    if (true_cfg) {  // v = v_neg + s * (v - v_neg), as diffusers' true_cfg_scale
      hunyuan::TransformerInputs nin = in;
      nin.text_states = neg.states;
      nin.text_mask = neg.mask;
      nin.pooled = neg.pooled;
      const at::Tensor vn = dit_->forward(nin, hook);
      v = vn + (v - vn) * cfg.true_cfg_scale;
    }
    latents = sched.step(v, i, latents);
    device_synchronize(dev);
    r.step_s.push_back(since(ts));
    std::ostringstream note;
    note << (cfg.attention.dense_step(i, cfg.steps) ? "dense" : "sparse");
    if (!cfg.attention.dense_step(i, cfg.steps)) {
      double d = 0;
      int n = 0;
      for (const auto& s : attn.stats())
        if (s.step == i && !s.dense) d += s.density, ++n;
      if (n) note << " density " << static_cast<int>(100 * d / n + 0.5) << "%";
    }
    steps.update(i + 1, note.str());
  }
  steps.finish();
  r.times.denoise_s = since(t0);
  r.attention = attn.stats();
  r.mean_density = attn.mean_sparse_density();
  r.attention_s = attn.attention_ms() / 1000.0;
  r.latents = latents.to(at::kCPU, at::kFloat);

  // 3. Decode.
  t0 = Clock::now();
  hunyuan::VaeTiling tiling;
  tiling.temporal = cfg.vae.temporal;
  tiling.spatial = cfg.vae.spatial;
  const at::Tensor video = vae_->decode(latents, tiling, progress);  // [1, 3, F, H, W] in [-1, 1]
  r.frames = (video[0].to(at::kFloat) / 2 + 0.5)
                 .clamp(0, 1)
                 .mul(255)
                 .round()
                 .to(at::kByte)
                 .permute({1, 2, 3, 0})
                 .contiguous()
                 .to(at::kCPU);
  r.times.vae_s = since(t0);
  r.times.total_s = since(t_all);
  return r;
}

}  // namespace xattn::pipelines
