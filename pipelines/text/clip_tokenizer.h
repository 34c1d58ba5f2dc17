// CLIP's text tokenizer, as HunyuanVideo's tokenizer_2/ and openai/clip-vit-large-patch14 ship it:
// byte-level BPE with "</w>" word ends (BpeTokenizer::from_clip_files), wrapped in
// <|startoftext|> ... <|endoftext|> and padded to the 77-token context.
//
//   auto tok = xattn::text::ClipTokenizer::from_dir("HunyuanVideo/tokenizer_2");
//   auto p = tok.encode_padded("A cat walks on the grass");   // p.ids.size() == 77
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "pipelines/text/bpe_tokenizer.h"

namespace xattn::text {

class ClipTokenizer {
 public:
  // Reads tokenizer.json when the folder has one, else vocab.json + merges.txt; bos/eos/pad
  // tokens and model_max_length from special_tokens_map.json / tokenizer_config.json when present
  // (CLIP's defaults otherwise: <|startoftext|>, <|endoftext|> for eos and pad, 77).
  static ClipTokenizer from_dir(const std::string& dir);
  // A CLIP BPE with CLIP's special tokens (<|startoftext|>, <|endoftext|> for eos and pad) and 77.
  static ClipTokenizer from_bpe(BpeTokenizer bpe);

  // <|startoftext|> tokens <|endoftext|>, no truncation.
  std::vector<int32_t> encode(const std::string& text) const;

  struct Padded {
    std::vector<int32_t> ids;  // exactly max_length ids
    int64_t length = 0;        // ids before the padding (specials included)
  };
  // As the text encoders are fed: truncated to max_length - 2 tokens, then the specials, then
  // pad ids up to max_length (default: model_max_length).
  Padded encode_padded(const std::string& text, int64_t max_length = -1) const;

  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens = true) const;

  int32_t bos_id() const { return bos_; }
  int32_t eos_id() const { return eos_; }
  int32_t pad_id() const { return pad_; }
  int64_t model_max_length() const { return max_length_; }
  const BpeTokenizer& bpe() const { return bpe_; }

 private:
  ClipTokenizer(BpeTokenizer bpe) : bpe_(std::move(bpe)) {}
  BpeTokenizer bpe_;
  int32_t bos_ = -1, eos_ = -1, pad_ = -1;
  int64_t max_length_ = 77;
};

}  // namespace xattn::text
