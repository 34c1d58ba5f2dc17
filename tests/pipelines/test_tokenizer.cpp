// Byte-level BPE against Hugging Face `tokenizers`: fixtures made on the GPU host by
// tests/fixtures/make_tokenizer_fixtures.py (small tokenizers trained with the real Qwen2 and
// LLaMA-3 pre-tokenizer settings, 560 strings each with the ids and decoded text HF produced).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "pipelines/text/bpe_tokenizer.h"

using xattn::text::BpeTokenizer;

namespace {
std::string fixture(const std::string& name, const std::string& file) {
  return std::string(XATTN_SOURCE_DIR) + "/tests/fixtures/tokenizers/" + name + "/" + file;
}

void check_against_hf(const std::string& name) {
  const BpeTokenizer tok = BpeTokenizer::from_file(fixture(name, "tokenizer.json"));
  std::ifstream in(fixture(name, "cases.json"));
  const auto j = nlohmann::json::parse(in);
  const auto& cases = j.at("cases");
  ASSERT_GE(cases.size(), 500u);
  int id_mismatch = 0, text_mismatch = 0;
  for (const auto& c : cases) {
    const std::string text = c.at("text");
    const std::vector<int32_t> want = c.at("ids").get<std::vector<int32_t>>();
    const std::vector<int32_t> got = tok.encode(text);
    if (got != want && ++id_mismatch <= 5) ADD_FAILURE() << name << ": ids differ for " << nlohmann::json(text).dump();
    const std::string back = tok.decode(want);
    if (back != c.at("decoded").get<std::string>() && ++text_mismatch <= 5)
      ADD_FAILURE() << name << ": decode differs for " << nlohmann::json(text).dump();
  }
  EXPECT_EQ(id_mismatch, 0) << "of " << cases.size();
  EXPECT_EQ(text_mismatch, 0) << "of " << cases.size();
}
}  // namespace

TEST(BpeTokenizer, Qwen2MatchesHuggingFace) { check_against_hf("qwen2"); }
TEST(BpeTokenizer, Llama3MatchesHuggingFace) { check_against_hf("llama3"); }

TEST(BpeTokenizer, RoundTripsTextAndSpecialTokens) {
  const BpeTokenizer tok = BpeTokenizer::from_file(fixture("llama3", "tokenizer.json"));
  for (std::string s : {"", "plain ascii", "naïve café 中文 🙂 👩‍💻", "<|begin_of_text|>hi<|eot_id|>", "  \n\t x"})
    EXPECT_EQ(tok.decode(tok.encode(s)), s);
  const int32_t eot = tok.token_to_id("<|eot_id|>");
  ASSERT_GE(eot, 0);
  EXPECT_EQ(tok.encode("<|eot_id|>"), std::vector<int32_t>{eot});
  EXPECT_EQ(tok.decode(tok.encode("a<|eot_id|>b"), /*skip_special_tokens=*/true), "ab");
  EXPECT_THROW(tok.decode({1 << 30}), xattn::Error);
}

TEST(BpeTokenizer, UnsupportedFilesSayWhy) {
  auto msg = [](const std::string& json) {
    try {
      BpeTokenizer::from_json(json, "t.json");
    } catch (const xattn::Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(msg("{").find("t.json: not valid JSON"), std::string::npos);
  EXPECT_NE(msg(R"({"model":{"type":"Unigram"}})").find("model.type must be BPE"), std::string::npos);
  EXPECT_NE(msg(R"({"model":{"type":"BPE","vocab":{},"merges":[]},"pre_tokenizer":null})").find("byte-level"),
            std::string::npos);
  EXPECT_NE(msg(R"({"model":{"type":"BPE","vocab":{},"merges":[]},"normalizer":{"type":"Lowercase"},)"
                R"("pre_tokenizer":{"type":"ByteLevel"}})")
                .find("normalizer Lowercase is not supported"),
            std::string::npos);
  EXPECT_THROW(BpeTokenizer::from_file("/nonexistent/tokenizer.json"), xattn::Error);
}
