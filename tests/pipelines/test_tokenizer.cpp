// Byte-level BPE against Hugging Face `tokenizers`: fixtures made on the GPU host by
// tests/fixtures/make_tokenizer_fixtures.py (small tokenizers trained with the real Qwen2 and
// LLaMA-3 pre-tokenizer settings, 560 strings each with the ids and decoded text HF produced).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "pipelines/text/bpe_tokenizer.h"
#include "pipelines/text/clip_tokenizer.h"

using xattn::text::BpeTokenizer;
using xattn::text::ClipTokenizer;

namespace {
std::string fixture(const std::string& name, const std::string& file) {
  return std::string(XATTN_SOURCE_DIR) + "/tests/fixtures/tokenizers/" + name + "/" + file;
}

void check_against_hf(const std::string& name, bool round_trips) {
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
    // Without a normaliser, byte-level BPE is lossless: decode(encode(x)) == x.
    if (round_trips && tok.decode(got) != text && ++text_mismatch <= 5)
      ADD_FAILURE() << name << ": decode(encode(x)) != x for " << nlohmann::json(text).dump();
  }
  EXPECT_EQ(id_mismatch, 0) << "of " << cases.size();
  EXPECT_EQ(text_mismatch, 0) << "of " << cases.size();
}
}  // namespace

TEST(BpeTokenizer, Qwen2MatchesHuggingFace) { check_against_hf("qwen2", false); }  // NFC: not lossless
TEST(BpeTokenizer, Llama3MatchesHuggingFace) { check_against_hf("llama3", true); }

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
  EXPECT_NE(msg(R"({"model":{"type":"BPE","vocab":{},"merges":[]},"normalizer":{"type":"NFKC"},)"
                R"("pre_tokenizer":{"type":"ByteLevel"}})")
                .find("normalizer NFKC is not supported"),
            std::string::npos);
  EXPECT_NE(msg(R"({"model":{"type":"BPE","vocab":{},"merges":["ab"]},"pre_tokenizer":{"type":"ByteLevel"}})")
                .find("merge 'ab' is not 'a b'"),
            std::string::npos);
  EXPECT_NE(msg(R"({"model":{"type":"BPE","vocab":{},"merges":[]},"pre_tokenizer":{"type":"Split",)"
                R"("pattern":{"Regex":"(a"},"behavior":"Isolated","invert":false}})")
                .find("does not compile"),
            std::string::npos);
  EXPECT_THROW(BpeTokenizer::from_file("/nonexistent/tokenizer.json"), xattn::Error);
}

// CLIP: a small vocabulary built the way CLIP's is (bytes, bytes + "</w>", one token per merge,
// the two specials) with merges learned under CLIP's normaliser and pattern; expected ids, padded
// ids and decodes from transformers' CLIPTokenizer reading the same folder.
TEST(ClipTokenizer, MatchesHuggingFace) {
  const ClipTokenizer tok = ClipTokenizer::from_dir(std::string(XATTN_SOURCE_DIR) + "/tests/fixtures/tokenizers/clip");
  EXPECT_EQ(tok.model_max_length(), 77);
  EXPECT_EQ(tok.bos_id(), tok.bpe().token_to_id("<|startoftext|>"));
  EXPECT_EQ(tok.pad_id(), tok.eos_id());
  std::ifstream in(fixture("clip", "cases.json"));
  const auto cases = nlohmann::json::parse(in).at("cases");
  ASSERT_GE(cases.size(), 500u);
  int ids_bad = 0, padded_bad = 0, text_bad = 0;
  for (const auto& c : cases) {
    const std::string text = c.at("text");
    const auto want = c.at("ids").get<std::vector<int32_t>>();
    if (tok.encode(text) != want && ++ids_bad <= 5) ADD_FAILURE() << "ids differ for " << nlohmann::json(text).dump();
    const auto padded = tok.encode_padded(text);
    if (padded.ids != c.at("padded77").get<std::vector<int32_t>>() && ++padded_bad <= 5)
      ADD_FAILURE() << "padded ids differ for " << nlohmann::json(text).dump();
    EXPECT_EQ(padded.length, std::min<int64_t>(77, static_cast<int64_t>(want.size())));
    if (tok.decode(want) != c.at("decoded").get<std::string>() && ++text_bad <= 5)
      ADD_FAILURE() << "decode differs for " << nlohmann::json(text).dump() << ": " << tok.decode(want);
  }
  EXPECT_EQ(ids_bad, 0);
  EXPECT_EQ(padded_bad, 0);
  EXPECT_EQ(text_bad, 0);
}

// The same pipeline described by a tokenizer.json (the `tokenizers` conversion transformers made
// of the fixture folder) gives the same ids.
TEST(ClipTokenizer, TokenizerJsonFormGivesTheSameIds) {
  const std::string dir = std::string(XATTN_SOURCE_DIR) + "/tests/fixtures/tokenizers/clip/";
  const BpeTokenizer files = BpeTokenizer::from_clip_files(dir + "vocab.json", dir + "merges.txt");
  const BpeTokenizer json = BpeTokenizer::from_file(dir + "backend_tokenizer.json");
  for (std::string s : {"A cat walks on the GRASS, realistic style.", "İstanbul ΣΑΣ   tabs\tnew\nlines 123",
                        "<|startoftext|>x<|endoftext|>", "", "   "})
    EXPECT_EQ(files.encode(s), json.encode(s)) << s;
  EXPECT_EQ(files.decode(files.encode("Hello   World!")), "hello world !");
}

TEST(ClipTokenizer, BadFoldersSayWhat) {
  auto msg = [](const std::string& dir) {
    try {
      ClipTokenizer::from_dir(dir);
    } catch (const xattn::Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(msg("/nonexistent").find("not a directory"), std::string::npos);
  EXPECT_NE(msg(std::string(XATTN_SOURCE_DIR) + "/tests").find("vocab.json + merges.txt"), std::string::npos);
  const ClipTokenizer tok = ClipTokenizer::from_dir(std::string(XATTN_SOURCE_DIR) + "/tests/fixtures/tokenizers/clip");
  EXPECT_THROW(tok.encode_padded("x", 1), xattn::Error);
  EXPECT_EQ(tok.encode_padded("a b c d e f", 4).ids.size(), 4u);
  EXPECT_EQ(tok.encode_padded("a b c d e f", 4).ids.back(), tok.eos_id());
}
