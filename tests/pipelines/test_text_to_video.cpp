// TextToVideo with the embedded tiny model on the CPU: geometry, determinism, the policy's dense
// warm-up equal to dense mode bit for bit, densities when sparse, cancellation, prompt encoding,
// and errors before work.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/safetensors/safetensors.h"
#include "pipelines/text_to_video.h"
#include "tests/test_util.h"

using xattn::pipelines::GenerateConfig;
using xattn::pipelines::TextToVideo;
using xattn::testing::error_of;

namespace {

GenerateConfig small() {
  GenerateConfig c;
  TextToVideo::apply_tiny_defaults(c);
  c.prompt = "A red kite over a beach";
  c.frames = 9;
  c.height = 64;
  c.width = 96;
  c.steps = 3;
  return c;
}

TextToVideo& model() {
  static TextToVideo t = TextToVideo::tiny();
  return t;
}

}  // namespace

TEST(TextToVideo, TinyModelRendersDeterministicFrames) {
  const auto a = model().generate(small());
  EXPECT_EQ(a.frames.sizes(), at::IntArrayRef({9, 64, 96, 3}));
  EXPECT_EQ(a.frames.scalar_type(), at::kByte);
  EXPECT_EQ(a.latents.sizes(), at::IntArrayRef({1, 16, 3, 8, 12}));
  EXPECT_EQ(a.step_s.size(), 3u);
  EXPECT_EQ(a.video_tokens, 3 * 4 * 6);
  EXPECT_GT(a.frames.to(at::kFloat).std().item<double>(), 0.0);
  const auto b = model().generate(small());
  EXPECT_TRUE(at::equal(a.frames, b.frames));
  GenerateConfig other = small();
  other.seed = 1;
  EXPECT_FALSE(at::equal(model().generate(other).latents, a.latents));
  GenerateConfig prompt = small();
  prompt.prompt = "A blue whale in deep water";
  EXPECT_FALSE(at::equal(model().generate(prompt).latents, a.latents));
}

// XAttention with as many warm-up steps as steps runs the same dense path: identical output.
// With no warm-up, the sparse calls are recorded with their densities.
TEST(TextToVideo, WarmupEqualsDenseAndSparseStepsReportDensity) {
  GenerateConfig dense = small();
  dense.frames = 9;
  dense.height = 128;
  dense.width = 128;
  dense.attention.mode = "dense";
  GenerateConfig warm = dense;
  warm.attention.mode = "xattention";
  warm.attention.warmup_steps = warm.steps;
  const auto d = model().generate(dense), w = model().generate(warm);
  EXPECT_TRUE(at::equal(d.latents, w.latents));
  EXPECT_TRUE(at::equal(d.frames, w.frames));
  EXPECT_EQ(w.mean_density, 1.0);
  GenerateConfig sparse = warm;
  sparse.attention.warmup_steps = 0;
  sparse.attention.xattention.selection = "top_ratio";
  sparse.attention.xattention.top_ratio = 0.5;
  const auto s = model().generate(sparse);
  ASSERT_EQ(s.attention.size(), static_cast<size_t>(sparse.steps * 4));  // 2 dual + 2 single blocks
  for (const auto& st : s.attention) EXPECT_FALSE(st.dense) << st.layer;
  EXPECT_LT(s.mean_density, 0.8);  // 192 video + a few text tokens in 4 blocks of 64: half kept per row
  EXPECT_GT(s.mean_density, 0.3);
  EXPECT_FALSE(at::equal(s.latents, d.latents));
  EXPECT_GT(s.attention_s, 0.0);
}

// True CFG: v = v_neg + s (v - v_neg). Against the prompt itself it changes nothing (bit for bit);
// against another prompt it does; a negative prompt without a scale > 1 is refused.
TEST(TextToVideo, TrueClassifierFreeGuidance) {
  const auto plain = model().generate(small());
  GenerateConfig same = small();
  same.negative_prompt = same.prompt;
  same.true_cfg_scale = 3.0;
  EXPECT_TRUE(at::equal(model().generate(same).latents, plain.latents));
  GenerateConfig other = same;
  other.negative_prompt = "blurry, low quality";
  const auto o = model().generate(other);
  EXPECT_FALSE(at::equal(o.latents, plain.latents));
  EXPECT_EQ(o.attention.size(), 2 * plain.attention.size());  // two passes per step
  GenerateConfig bad = small();
  bad.negative_prompt = "x";
  EXPECT_THROW(model().generate(bad), xattn::Error);
}

TEST(TextToVideo, CancelStopsAtTheNextStep) {
  int events = 0;
  const auto cancel_in_denoise = [&](const xattn::ProgressEvent& e) {
    ++events;
    return e.task != "denoise";
  };
  EXPECT_THROW(model().generate(small(), cancel_in_denoise), xattn::Cancelled);
  EXPECT_GT(events, 0);
}

TEST(TextToVideo, BadSettingsFailBeforeWork) {
  auto msg = [](const GenerateConfig& c) { return error_of([&] { model().generate(c); }); };
  GenerateConfig c = small();
  c.frames = 8;
  EXPECT_NE(msg(c).find("frames: 8 is not 4k + 1 (e.g. 5 or 9)"), std::string::npos);
  c = small();
  c.height = 72;
  EXPECT_NE(msg(c).find("height: 72 is not a multiple of 16"), std::string::npos);
  c = small();
  c.prompt.clear();
  EXPECT_NE(msg(c).find("prompt"), std::string::npos);
  c = small();
  c.attention.dense_layers = {"dual:x"};
  EXPECT_NE(msg(c).find("dual:x"), std::string::npos);
}

TEST(TextToVideo, ModelFoldersAreCheckedFirst) {
  std::string m = error_of([] { TextToVideo::load(std::string(XATTN_TEST_TMPDIR), {}); });
  EXPECT_NE(m.find("not a complete HunyuanVideo folder; missing:"), std::string::npos) << m;
  EXPECT_NE(m.find("transformer/config.json"), std::string::npos) << m;
  EXPECT_NE(m.find("tokenizer_2/vocab.json + merges.txt"), std::string::npos) << m;
  EXPECT_THROW(TextToVideo::load("/nonexistent/model", {}), xattn::Error);
}

namespace {

void copy_file(const std::string& from, const std::string& to) {
  std::ifstream in(from, std::ios::binary);
  std::ofstream out(to, std::ios::binary);
  out << in.rdbuf();
}
void write_text(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

// A complete diffusers-layout folder from small parts: fixture tokenizers, CLIP and VAE; random
// LLaMA text encoder and transformer saved with their published key names.
std::string make_model_folder(const std::string& name) {
  const std::string fx = std::string(XATTN_SOURCE_DIR) + "/tests/fixtures/";
  const std::string d = std::string(XATTN_TEST_TMPDIR) + "/" + name;
  ::mkdir(XATTN_TEST_TMPDIR, 0755);
  ::mkdir(d.c_str(), 0755);
  for (const char* sub : {"tokenizer", "tokenizer_2", "text_encoder", "text_encoder_2", "transformer", "vae"})
    ::mkdir((d + "/" + sub).c_str(), 0755);
  write_text(d + "/model_index.json", R"({"_class_name": "HunyuanVideoPipeline"})");
  copy_file(fx + "tokenizers/llama3/tokenizer.json", d + "/tokenizer/tokenizer.json");
  copy_file(fx + "tokenizers/clip/vocab.json", d + "/tokenizer_2/vocab.json");
  copy_file(fx + "tokenizers/clip/merges.txt", d + "/tokenizer_2/merges.txt");
  copy_file(fx + "models/clip_text/config.json", d + "/text_encoder_2/config.json");
  copy_file(fx + "models/clip_text/model.safetensors", d + "/text_encoder_2/model.safetensors");
  copy_file(fx + "models/hunyuan_tiny/vae/config.json", d + "/vae/config.json");
  copy_file(fx + "models/hunyuan_tiny/vae/diffusion_pytorch_model.safetensors",
            d + "/vae/diffusion_pytorch_model.safetensors");
  const std::string llm_json = R"({"model_type": "llama", "vocab_size": 705, "hidden_size": 32, "intermediate_size": 64,
    "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-5,
    "rope_theta": 500000.0, "bos_token_id": 0, "eos_token_id": 1})";
  write_text(d + "/text_encoder/config.json", llm_json);
  const auto llm = xattn::text::DecoderLM::random(xattn::text::DecoderConfig::from_json(llm_json), {}, 1);
  xattn::safetensors::save(d + "/text_encoder/model.safetensors", llm.named_parameters());
  xattn::hunyuan::TransformerConfig tc = xattn::hunyuan::TransformerConfig::from_file(
      fx + "models/hunyuan_tiny/transformer/config.json");
  tc.text_embed_dim = 32;        // the LLM above
  tc.pooled_projection_dim = 64;  // the CLIP fixture
  write_text(d + "/transformer/config.json", tc.to_json());
  xattn::safetensors::save(d + "/transformer/diffusion_pytorch_model.safetensors",
                           xattn::hunyuan::Transformer::random(tc, {}, 2).named_parameters());
  return d;
}

}  // namespace

TEST(TextToVideo, LoadsADiffusersFolderAndChecksShapesFirst) {
  const std::string d = make_model_folder("t2v_folder");
  int events = 0;
  TextToVideo t2v = TextToVideo::load(d, {}, [&](const xattn::ProgressEvent&) { return ++events > 0; });
  EXPECT_EQ(events, 3);
  GenerateConfig c = small();
  c.vae.temporal = false;
  const auto r = t2v.generate(c);
  EXPECT_EQ(r.frames.sizes(), at::IntArrayRef({9, 64, 96, 3}));
  // A misshaped transformer tensor is named, with both shapes, before any weight is read.
  auto w = xattn::safetensors::load(d + "/transformer/diffusion_pytorch_model.safetensors");
  w["single_transformer_blocks.1.proj_out.weight"] = at::zeros({32, 100});
  xattn::safetensors::save(d + "/transformer/diffusion_pytorch_model.safetensors", w);
  const std::string m = error_of([&] {
    TextToVideo::load(d, {}, [&](const xattn::ProgressEvent&) {
      ADD_FAILURE() << "loading started";
      return true;
    });
  });
  EXPECT_NE(m.find("shape mismatch for 'single_transformer_blocks.1.proj_out.weight': parameter is [32, 160], "
                   "checkpoint has [32, 100]"),
            std::string::npos)
      << m;
}
