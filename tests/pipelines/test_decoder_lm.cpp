// Decoder LLM against transformers 5 (fixtures: tiny random LLaMA with llama3 RoPE scaling, GQA and
// a sharded checkpoint; Qwen2 with q/k/v biases and a tied head; Qwen2-VL's text model with M-RoPE),
// plus KV-cache, padding, loading-error and config-parsing checks.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "core/error.h"
#include "core/safetensors/safetensors.h"
#include "model_fixtures.h"
#include "pipelines/text/decoder_lm.h"

using xattn::test::expected_facts;
using xattn::test::expected_tensors;
using xattn::test::model_fixture;
using xattn::test::rel_err;
using xattn::text::DecoderConfig;
using xattn::text::DecoderLM;

namespace {

constexpr double kTol = 1e-4;  // fp32 parity (issue acceptance)

void check_causal_lm(const std::string& name) {
  const DecoderLM lm = DecoderLM::load(model_fixture(name));
  auto want = expected_tensors(name);
  const auto facts = expected_facts(name);
  const int n = static_cast<int>(lm.config().num_layers);
  ASSERT_EQ(facts.at("num_hidden_states").get<int>(), n + 1);
  ASSERT_TRUE(facts.at("last_is_final_norm").get<bool>());
  DecoderLM::ForwardOptions f;
  for (int i = 0; i <= n; ++i) f.hidden_states.push_back(i);
  const auto out = lm.forward(want.at("input_ids"), f);
  EXPECT_LE(rel_err(out.logits, want.at("logits")), kTol);
  for (int i = 0; i <= n; ++i)
    EXPECT_LE(rel_err(out.hidden_states.at(i), want.at("hidden_states." + std::to_string(i))), kTol) << "hidden " << i;
  // A different input length (the first 7 tokens of row 0).
  const auto prefix = lm.forward(want.at("input_ids").narrow(0, 0, 1).narrow(1, 0, 7));
  EXPECT_LE(rel_err(prefix.logits, want.at("prefix_logits")), kTol);

  // Greedy decoding, free-running and with a stop token.
  const at::Tensor row = want.at("input_ids")[0].contiguous();
  const std::vector<int64_t> prompt(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + row.numel());
  xattn::text::GenerateOptions g;
  g.max_new_tokens = facts.at("greedy_max_new_tokens").get<int64_t>();
  g.stop_tokens = {-1};
  EXPECT_EQ(lm.generate(prompt, g), facts.at("greedy_new_tokens").get<std::vector<int64_t>>());
  g.stop_tokens = {facts.at("stop_token").get<int64_t>()};
  EXPECT_EQ(lm.generate(prompt, g), facts.at("greedy_until_stop").get<std::vector<int64_t>>());
}

}  // namespace

TEST(DecoderLM, LlamaMatchesTransformers) { check_causal_lm("llama"); }
TEST(DecoderLM, Qwen2MatchesTransformers) { check_causal_lm("qwen2"); }

TEST(DecoderLM, LoadsPublishedLayouts) {
  const DecoderLM llama = DecoderLM::load(model_fixture("llama"));  // sharded, index.json
  EXPECT_EQ(llama.config().rope.type, "llama3");
  EXPECT_TRUE(llama.has_lm_head());
  EXPECT_EQ(llama.named_parameters().count("lm_head.weight"), 1u);
  const DecoderLM qwen = DecoderLM::load(model_fixture("qwen2"));  // tied head, biases
  EXPECT_TRUE(qwen.config().tie_word_embeddings);
  EXPECT_TRUE(qwen.config().qkv_bias);
  EXPECT_EQ(qwen.named_parameters().count("lm_head.weight"), 0u);
  const DecoderLM bare = DecoderLM::load(model_fixture("qwen2_vl_text"));  // no prefix, no head
  EXPECT_FALSE(bare.has_lm_head());
  EXPECT_EQ(bare.named_parameters().count("embed_tokens.weight"), 1u);
  EXPECT_THROW(bare.forward(at::ones({1, 3}, at::kLong)), xattn::Error);  // logits without a head
}

TEST(DecoderLM, MRopeMatchesQwen2VL) {
  const DecoderLM lm = DecoderLM::load(model_fixture("qwen2_vl_text"));
  ASSERT_EQ(lm.config().rope.mrope_section, (std::vector<int64_t>{2, 3, 3}));
  auto want = expected_tensors("qwen2_vl_text");
  const int n = static_cast<int>(lm.config().num_layers);
  DecoderLM::ForwardOptions f;
  f.logits = false;
  for (int i = 0; i <= n; ++i) f.hidden_states.push_back(i);
  f.position_ids = want.at("position_ids");  // [3, 1, L]: text, a 2x2x3 grid, text
  const auto out = lm.forward(want.at("input_ids"), f);
  for (int i = 0; i <= n; ++i)
    EXPECT_LE(rel_err(out.hidden_states.at(i), want.at("hidden_states." + std::to_string(i))), kTol) << i;
  EXPECT_LE(rel_err(out.hidden_states.at(n), want.at("last_hidden_state")), kTol);
  // 1-D positions: every section sees the same position.
  DecoderLM::ForwardOptions plain;
  plain.logits = false;
  plain.hidden_states = {-1};
  const at::Tensor p = lm.forward(want.at("input_ids"), plain).hidden_states.at(-1);
  EXPECT_LE(rel_err(p, want.at("plain_last_hidden_state")), kTol);
  // The grid positions matter (otherwise this test could not tell M-RoPE from RoPE).
  EXPECT_GT(rel_err(p, want.at("last_hidden_state")), 1e-3);
}

TEST(DecoderLM, HiddenStateIndicesAndEarlyStop) {
  const DecoderLM lm = DecoderLM::load(model_fixture("llama"));
  auto want = expected_tensors("llama");
  DecoderLM::ForwardOptions f;
  f.logits = false;
  f.hidden_states = {-3, -1, 0};  // n = 3: -3 is hidden_states[1], -1 the final norm's output
  int calls = 0;
  f.on_attention = [&](int, const xattn::attention::AttentionStats& s) {
    ++calls;
    EXPECT_TRUE(s.dense);
  };
  const auto out = lm.forward(want.at("input_ids"), f);
  EXPECT_LE(rel_err(out.hidden_states.at(-3), want.at("hidden_states.1")), kTol);
  EXPECT_LE(rel_err(out.hidden_states.at(-1), want.at("hidden_states.3")), kTol);
  EXPECT_LE(rel_err(out.hidden_states.at(0), want.at("hidden_states.0")), kTol);
  EXPECT_EQ(calls, 3);
  // Only layer 0 runs when hidden_states[1] is all that is asked for.
  f.hidden_states = {1};
  calls = 0;
  EXPECT_LE(rel_err(lm.forward(want.at("input_ids"), f).hidden_states.at(1), want.at("hidden_states.1")), kTol);
  EXPECT_EQ(calls, 1);
  f.hidden_states = {5};
  EXPECT_THROW(lm.forward(want.at("input_ids"), f), xattn::Error);
}

TEST(DecoderLM, KVCacheDecodeEqualsFullRecomputation) {
  for (const std::string name : {"llama", "qwen2"}) {
    const DecoderLM lm = DecoderLM::load(model_fixture(name));
    const at::Tensor ids = expected_tensors(name).at("input_ids");  // [2, 13]
    const at::Tensor full = lm.forward(ids).logits;
    auto cache = lm.new_cache(2, 13);
    DecoderLM::ForwardOptions f;
    f.cache = &cache;
    std::vector<at::Tensor> steps{lm.forward(ids.narrow(1, 0, 6), f).logits};
    for (int64_t t = 6; t < 13; ++t) steps.push_back(lm.forward(ids.narrow(1, t, 1), f).logits);
    EXPECT_EQ(cache.length, 13);
    EXPECT_LE(rel_err(at::cat(steps, 1), full), 1e-5) << name;
    EXPECT_THROW(lm.forward(ids.narrow(1, 0, 1), f), xattn::Error);  // the cache is full
  }
}

TEST(DecoderLM, RightPaddingLeavesValidPositionsAlone) {
  const DecoderLM lm = DecoderLM::load(model_fixture("qwen2"));
  const at::Tensor ids = expected_tensors("qwen2").at("input_ids");
  at::Tensor batch = ids.clone();
  batch[1].narrow(0, 0, 9).copy_(ids[0].narrow(0, 0, 9));
  batch[1].narrow(0, 9, 4).fill_(0);  // padding after 9 valid tokens
  DecoderLM::ForwardOptions f;
  f.hidden_states = {-1};
  const at::Tensor alone = lm.forward(ids.narrow(0, 0, 1).narrow(1, 0, 9), f).hidden_states.at(-1)[0];
  const at::Tensor padded = lm.forward(batch, f).hidden_states.at(-1)[1].narrow(0, 0, 9);
  EXPECT_LE(rel_err(padded, alone), 1e-5);
}

TEST(DecoderLM, BadCheckpointsNameTheTensorAndShapes) {
  // POSIX calls for the scratch folder: on the GPU host, std::filesystem::remove_all and copy_file
  // crashed in this binary linked with the pip LibTorch (a plain program was fine; cause not pinned).
  const std::string dir = std::string(XATTN_TEST_TMPDIR) + "/bad_decoder";
  const std::string weights_file = dir + "/model.safetensors", config_file = dir + "/config.json";
  ::mkdir(XATTN_TEST_TMPDIR, 0755);
  ::mkdir(dir.c_str(), 0755);
  {
    std::ifstream in(model_fixture("qwen2") + "/config.json", std::ios::binary);
    std::ofstream out(config_file, std::ios::binary);
    out << in.rdbuf();
  }
  auto weights = xattn::safetensors::load(model_fixture("qwen2") + "/model.safetensors");
  weights["model.layers.1.self_attn.k_proj.weight"] = at::zeros({16, 64});
  weights.erase("model.layers.2.mlp.up_proj.weight");
  xattn::safetensors::save(weights_file, weights);
  std::string msg;
  try {
    DecoderLM::load(dir);
  } catch (const xattn::Error& e) {
    msg = e.what();
  }
  EXPECT_NE(msg.find("shape mismatch for 'model.layers.1.self_attn.k_proj.weight': parameter is [32, 64], "
                     "checkpoint has [16, 64]"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("missing in checkpoint: 'model.layers.2.mlp.up_proj.weight'"), std::string::npos) << msg;
  EXPECT_NE(msg.find(dir), std::string::npos) << msg;
  ::unlink(weights_file.c_str());
  EXPECT_THROW(DecoderLM::load(dir), xattn::Error);  // no weights at all
  ::unlink(config_file.c_str());
  ::rmdir(dir.c_str());
}

TEST(DecoderLM, ReadsPublishedConfigs) {
  // Meta-Llama-3-8B's config.json (transformers 4.x fields).
  const DecoderConfig l = DecoderConfig::from_json(R"({"architectures":["LlamaForCausalLM"],"bos_token_id":128000,
    "eos_token_id":128001,"hidden_act":"silu","hidden_size":4096,"intermediate_size":14336,"max_position_embeddings":8192,
    "model_type":"llama","num_attention_heads":32,"num_hidden_layers":32,"num_key_value_heads":8,"rms_norm_eps":1e-05,
    "rope_scaling":null,"rope_theta":500000.0,"tie_word_embeddings":false,"vocab_size":128256})");
  const DecoderConfig ref = DecoderConfig::llama3_8b();
  EXPECT_EQ(l.hidden_size, ref.hidden_size);
  EXPECT_EQ(l.num_kv_heads, 8);
  EXPECT_EQ(l.head_dim, 128);
  EXPECT_EQ(l.rope.theta, 500000.0);
  EXPECT_EQ(l.rope.type, "default");
  EXPECT_EQ(l.eos_token_ids, (std::vector<int64_t>{128001}));
  // Qwen2-VL-7B-Instruct's (flat, mrope in rope_scaling).
  const DecoderConfig q = DecoderConfig::from_json(R"({"model_type":"qwen2_vl","hidden_size":3584,
    "intermediate_size":18944,"num_hidden_layers":28,"num_attention_heads":28,"num_key_value_heads":4,"vocab_size":152064,
    "rms_norm_eps":1e-06,"rope_theta":1000000.0,"rope_scaling":{"type":"mrope","mrope_section":[16,24,24]},
    "eos_token_id":151645,"tie_word_embeddings":false,"vision_config":{"depth":32}})");
  EXPECT_EQ(q.rope.mrope_section, (std::vector<int64_t>{16, 24, 24}));
  EXPECT_EQ(q.head_dim, 128);
  EXPECT_TRUE(q.qkv_bias);
  auto msg = [](const std::string& json) {
    try {
      DecoderConfig::from_json(json, "c.json");
    } catch (const xattn::Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string base = R"("hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"vocab_size":10)";
  EXPECT_NE(msg(R"({"model_type":"mistral",)" + base + "}").find("c.json: model_type: 'mistral' is not a supported"),
            std::string::npos);
  EXPECT_NE(msg(R"({"model_type":"llama","rope_scaling":{"rope_type":"yarn"},)" + base + "}").find("rope type 'yarn'"),
            std::string::npos);
  EXPECT_NE(msg(R"({"model_type":"llama","intermediate_size":1})").find("c.json: vocab_size: missing"), std::string::npos);
  EXPECT_NE(msg(R"({"model_type":"llama","num_key_value_heads":3,)" + base + "}").find("not a multiple"),
            std::string::npos);
  EXPECT_NE(msg(R"({"model_type":"qwen2_vl","rope_scaling":{"type":"mrope","mrope_section":[1,2,3]},)" + base + "}")
                .find("mrope_section"),
            std::string::npos);
}

TEST(DecoderLM, RandomWeightsAreSeeded) {
  DecoderConfig c = DecoderConfig::from_file(model_fixture("llama") + "/config.json");
  const DecoderLM a = DecoderLM::random(c, {}, 7), b = DecoderLM::random(c, {}, 7), d = DecoderLM::random(c, {}, 8);
  const auto pa = a.named_parameters(), pb = b.named_parameters(), pd = d.named_parameters();
  EXPECT_TRUE(at::equal(pa.at("model.layers.0.self_attn.q_proj.weight"), pb.at("model.layers.0.self_attn.q_proj.weight")));
  EXPECT_FALSE(at::equal(pa.at("model.layers.0.self_attn.q_proj.weight"), pd.at("model.layers.0.self_attn.q_proj.weight")));
  EXPECT_NEAR(pa.at("model.embed_tokens.weight").std().item<double>(), 0.02, 0.002);
  EXPECT_EQ(pa.at("model.norm.weight").min().item<float>(), 1.0f);
}

// The GPU path (bf16 weights, SDPA / our kernels for attention, KV cache on the device) against the
// fp32 CPU result, within bf16 tolerance.
TEST(DecoderLM, CudaBf16MatchesCpuFp32) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  for (const std::string name : {"llama", "qwen2"}) {
    const DecoderLM cpu = DecoderLM::load(model_fixture(name));
    const DecoderLM gpu = DecoderLM::load(model_fixture(name), {at::kCUDA, at::kBFloat16});
    const at::Tensor ids = expected_tensors(name).at("input_ids");
    const at::Tensor want = cpu.forward(ids).logits;
    EXPECT_LE(rel_err(gpu.forward(ids).logits, want), 3e-2) << name;
    auto cache = gpu.new_cache(2, 13);
    DecoderLM::ForwardOptions f;
    f.cache = &cache;
    std::vector<at::Tensor> steps{gpu.forward(ids.narrow(1, 0, 6), f).logits};
    for (int64_t t = 6; t < 13; ++t) steps.push_back(gpu.forward(ids.narrow(1, t, 1), f).logits);
    EXPECT_LE(rel_err(at::cat(steps, 1), want), 3e-2) << name;
  }
}
