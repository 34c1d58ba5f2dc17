// HunyuanVideo's prompt encoding: the LLaMA-class encoder reads the prompt inside the published
// template and gives the hidden states of layer -3 (the last two layers are not run), cropped past
// the template; CLIP's text tower gives the pooled vector. Needs the tokenizers (XATTN_WITH_TEXT).
//
//   auto enc = xattn::hunyuan::TextEncoder::load("HunyuanVideo", {at::kCUDA, at::kBFloat16});
//   xattn::hunyuan::PromptEmbeddings e = enc.encode({"A cat walks on the grass"});
//   // e.states [1, 256, 4096], e.mask [1, 256], e.pooled [1, 768]
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <vector>

#include "pipelines/hunyuan/modules.h"
#include "pipelines/text/bpe_tokenizer.h"
#include "pipelines/text/clip_text.h"
#include "pipelines/text/clip_tokenizer.h"
#include "pipelines/text/decoder_lm.h"

namespace xattn::hunyuan {

struct PromptTemplate {
  // diffusers' DEFAULT_PROMPT_TEMPLATE for HunyuanVideo; "{}" is replaced by the prompt.
  std::string text = kDefaultTemplate;
  // Tokens dropped from the front of the encoder output: -1 counts them (BOS + the template's
  // tokens before "{}"); diffusers fixes 95 for the published tokenizer.
  int64_t crop_start = -1;
  int64_t max_length = 256;            // prompt tokens kept after the crop
  int hidden_state_skip_layer = 2;     // hidden_states[-(skip + 1)]
  static const char* const kDefaultTemplate;
};

struct PromptEmbeddings {
  at::Tensor states;  // [B, max_length, hidden] in the model dtype
  at::Tensor mask;    // int64 [B, max_length], 1 for prompt tokens (right-padded)
  at::Tensor pooled;  // [B, clip hidden]
};

class TextEncoder {
 public:
  TextEncoder(text::BpeTokenizer tokenizer, text::DecoderLM llm, text::ClipTokenizer clip_tokenizer,
              text::ClipTextEncoder clip, PromptTemplate tmpl = {});
  // A diffusers HunyuanVideo folder: tokenizer/, text_encoder/, tokenizer_2/, text_encoder_2/.
  static TextEncoder load(const std::string& model_dir, const ModelOptions& options);

  PromptEmbeddings encode(const std::vector<std::string>& prompts) const;
  int64_t crop_start() const { return crop_start_; }
  // The LLM's input ids and mask for prompts (exposed for tests).
  std::pair<at::Tensor, at::Tensor> llm_inputs(const std::vector<std::string>& prompts) const;

  // Moves both encoders' weights (e.g. to the CPU between generations, back before encoding).
  void to(const at::Device& device);
  const text::DecoderLM& llm() const { return llm_; }
  const text::ClipTextEncoder& clip() const { return clip_; }

 private:
  text::BpeTokenizer tok_;
  text::DecoderLM llm_;
  text::ClipTokenizer clip_tok_;
  text::ClipTextEncoder clip_;
  void count_crop();
  PromptTemplate tmpl_;
  int32_t bos_ = -1, pad_ = 0;
  int64_t crop_start_ = 0;
};

}  // namespace xattn::hunyuan
