// CLIP text tower against transformers' CLIPTextModel (tiny random weights, prompts tokenised by
// the CLIP tokenizer fixture, padded to 77).
#include <gtest/gtest.h>

#include "core/error.h"
#include "model_fixtures.h"
#include "pipelines/text/clip_text.h"
#ifdef XATTN_WITH_TEXT
#include "pipelines/text/clip_tokenizer.h"
#endif

using xattn::test::expected_facts;
using xattn::test::expected_tensors;
using xattn::test::model_fixture;
using xattn::test::rel_err;
using xattn::text::ClipTextConfig;
using xattn::text::ClipTextEncoder;

TEST(ClipText, MatchesTransformers) {
  const ClipTextEncoder clip = ClipTextEncoder::load(model_fixture("clip_text"));
  auto want = expected_tensors("clip_text");
  const auto out = clip.forward(want.at("input_ids"), /*all_hidden_states=*/true);
  EXPECT_LE(rel_err(out.last_hidden_state, want.at("last_hidden_state")), 1e-4);
  EXPECT_LE(rel_err(out.pooled, want.at("pooler_output")), 1e-4);
  ASSERT_EQ(static_cast<int>(out.hidden_states.size()), expected_facts("clip_text").at("num_hidden_states").get<int>());
  for (size_t i = 0; i < out.hidden_states.size(); ++i)
    EXPECT_LE(rel_err(out.hidden_states[i], want.at("hidden_states." + std::to_string(i))), 1e-4) << i;
}

#ifdef XATTN_WITH_TEXT
TEST(ClipText, TokenizerGivesTheFixtureIds) {
  const auto tok = xattn::text::ClipTokenizer::from_dir(std::string(XATTN_SOURCE_DIR) + "/tests/fixtures/tokenizers/clip");
  const at::Tensor ids = expected_tensors("clip_text").at("input_ids");
  const auto prompts = expected_facts("clip_text").at("prompts").get<std::vector<std::string>>();
  for (size_t i = 0; i < prompts.size(); ++i) {
    const auto p = tok.encode_padded(prompts[i]);
    const at::Tensor row = ids[static_cast<int64_t>(i)].contiguous();
    EXPECT_EQ(p.ids, std::vector<int32_t>(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + row.numel())) << prompts[i];
  }
}
#endif

TEST(ClipText, PoolsAtTheConfiguredEndOfText) {
  ClipTextConfig c;
  c.vocab_size = 50;
  c.hidden_size = 32;
  c.intermediate_size = 64;
  c.num_layers = 2;
  c.num_heads = 4;
  c.max_position_embeddings = 16;
  c.eos_token_id = 7;  // not the highest id: searched for
  const ClipTextEncoder enc = ClipTextEncoder::random(c, {}, 3);
  const at::Tensor ids = at::tensor({1, 30, 7, 40, 7, 49, 1, 2, 3, 7, 9, 9}, at::kLong).view({2, 6});
  const auto out = enc.forward(ids);
  EXPECT_TRUE(at::equal(out.pooled[0], out.last_hidden_state[0][2]));  // first 7 in row 0
  EXPECT_TRUE(at::equal(out.pooled[1], out.last_hidden_state[1][3]));  // first 7 in row 1
  c.eos_token_id = 2;  // legacy: the highest id
  const auto legacy = ClipTextEncoder::random(c, {}, 3).forward(ids);
  EXPECT_TRUE(at::equal(legacy.pooled[0], legacy.last_hidden_state[0][5]));
  EXPECT_THROW(enc.forward(at::zeros({1, 17}, at::kLong)), xattn::Error);      // longer than the context
  EXPECT_THROW(enc.forward(at::full({1, 3}, 50, at::kLong)), xattn::Error);    // outside the vocabulary
  c.hidden_act = "relu";
  EXPECT_NE(c.check().find("relu"), std::string::npos);
}
