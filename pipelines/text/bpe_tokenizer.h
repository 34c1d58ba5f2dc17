// Byte-level BPE tokenizers from Hugging Face `tokenizer.json` files (Qwen2, LLaMA-3, GPT-2, CLIP
// style): added/special tokens matched whole before anything else, the file's normaliser (NFC,
// Lowercase, Replace, in sequence), its pre-tokenizer split regexes (PCRE2 with Unicode
// properties; Isolated, or Removed+invert as CLIP's) and byte-level mapping, merges by rank, an
// optional end-of-word suffix ("</w>"), and decoding back to text (invalid UTF-8 becomes U+FFFD,
// as in `tokenizers`). CLIP's vocab.json + merges.txt pair loads with from_clip_files().
//
//   auto tok = xattn::text::BpeTokenizer::from_file("Qwen2-VL-7B-Instruct/tokenizer.json");
//   std::vector<int32_t> ids = tok.encode("Describe the video.");
//   std::string back = tok.decode(ids);
//
// encode() adds no special tokens of its own (no BOS/EOS post-processing): callers build
// prompts with the chat template and pass the special tokens in the text.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace xattn::text {

class BpeTokenizer {
 public:
  // Throws xattn::Error naming the file and the unsupported or malformed part.
  static BpeTokenizer from_file(const std::string& path);
  static BpeTokenizer from_json(const std::string& json_text, const std::string& origin = "tokenizer.json");
  // CLIP's published files: NFC, whitespace runs to one space, lower case, CLIP's split pattern
  // (text between matches dropped), "</w>" ending each word; <|startoftext|> and <|endoftext|>
  // are special (and <|endoftext|> the unknown token). decode() turns word ends into spaces and
  // strips the result, as transformers' CLIPTokenizer does.
  static BpeTokenizer from_clip_files(const std::string& vocab_json, const std::string& merges_txt);
  // The same from the files' contents.
  static BpeTokenizer from_clip_texts(const std::string& vocab_json_text, const std::string& merges_text,
                                      const std::string& origin = "vocab.json");
  ~BpeTokenizer();
  BpeTokenizer(BpeTokenizer&&) noexcept;
  BpeTokenizer& operator=(BpeTokenizer&&) noexcept;

  std::vector<int32_t> encode(const std::string& text) const;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens = false) const;

  int32_t token_to_id(const std::string& token) const;  // -1 when absent
  std::string id_to_token(int32_t id) const;            // throws for unknown ids
  int64_t vocab_size() const;                           // model vocabulary + added tokens

 private:
  BpeTokenizer();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace xattn::text
