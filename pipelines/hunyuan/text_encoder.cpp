#include "pipelines/hunyuan/text_encoder.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "pipelines/text/hf_model_util.h"

namespace xattn::hunyuan {

const char* const PromptTemplate::kDefaultTemplate =
    "<|start_header_id|>system<|end_header_id|>\n\nDescribe the video by detailing the following aspects: "
    "1. The main content and theme of the video."
    "2. The color, shape, size, texture, quantity, text, and spatial relationships of the objects."
    "3. Actions, events, behaviors temporal relationships, physical movement changes of the objects."
    "4. background environment, light, style and atmosphere."
    "5. camera angles, movements, and transitions used in the video:<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\n{}<|eot_id|>";

namespace {

std::string special_token(const nlohmann::json& cfg, const char* key) {
  if (!cfg.contains(key) || cfg[key].is_null()) return "";
  const auto& v = cfg[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content")) return v["content"].get<std::string>();
  return "";
}

}  // namespace

TextEncoder::TextEncoder(text::BpeTokenizer tokenizer, text::DecoderLM llm, text::ClipTokenizer clip_tokenizer,
                         text::ClipTextEncoder clip, PromptTemplate tmpl)
    : tok_(std::move(tokenizer)), llm_(std::move(llm)), clip_tok_(std::move(clip_tokenizer)), clip_(std::move(clip)),
      tmpl_(std::move(tmpl)) {
  const auto brace = tmpl_.text.find("{}");
  if (brace == std::string::npos) throw Error("text encoder", "the prompt template has no {} placeholder");
  bos_ = tok_.token_to_id("<|begin_of_text|>");
  const int32_t eos = tok_.token_to_id("<|end_of_text|>");
  pad_ = eos >= 0 ? eos : 0;
  count_crop();
}

void TextEncoder::count_crop() {
  const auto brace = tmpl_.text.find("{}");
  crop_start_ = tmpl_.crop_start >= 0
                    ? tmpl_.crop_start
                    : (bos_ >= 0 ? 1 : 0) + static_cast<int64_t>(tok_.encode(tmpl_.text.substr(0, brace)).size());
}

TextEncoder TextEncoder::load(const std::string& model_dir, const ModelOptions& options) {
  namespace fs = std::filesystem;
  const fs::path d(model_dir);
  const std::string tok_json = (d / "tokenizer" / "tokenizer.json").string();
  if (!fs::exists(tok_json)) throw Error("model", model_dir + ": no tokenizer/tokenizer.json (the LLaMA tokenizer)");
  text::BpeTokenizer tok = text::BpeTokenizer::from_file(tok_json);
  text::ClipTokenizer clip_tok = text::ClipTokenizer::from_dir((d / "tokenizer_2").string());
  text::DecoderLM llm = text::DecoderLM::load((d / "text_encoder").string(), options);
  text::ClipTextEncoder clip = text::ClipTextEncoder::load((d / "text_encoder_2").string(), options);
  TextEncoder enc(std::move(tok), std::move(llm), std::move(clip_tok), std::move(clip));
  // Special tokens named by tokenizer_config.json win over the LLaMA-3 defaults.
  const fs::path cfg_path = d / "tokenizer" / "tokenizer_config.json";
  if (fs::exists(cfg_path)) {
    nlohmann::json cfg;
    try {
      cfg = nlohmann::json::parse(text::read_text_file(cfg_path.string()));
    } catch (const std::exception& e) {
      throw Error("model", cfg_path.string() + ": not valid JSON: " + e.what());
    }
    const std::string bos = special_token(cfg, "bos_token"), pad = special_token(cfg, "pad_token");
    if (!bos.empty() && enc.tok_.token_to_id(bos) >= 0) enc.bos_ = enc.tok_.token_to_id(bos);
    if (!pad.empty() && enc.tok_.token_to_id(pad) >= 0) enc.pad_ = enc.tok_.token_to_id(pad);
    enc.count_crop();
  }
  return enc;
}

std::pair<at::Tensor, at::Tensor> TextEncoder::llm_inputs(const std::vector<std::string>& prompts) const {
  const int64_t B = static_cast<int64_t>(prompts.size()), L = tmpl_.max_length + crop_start_;
  at::Tensor ids = at::full({B, L}, pad_, at::kLong), mask = at::zeros({B, L}, at::kLong);
  const auto brace = tmpl_.text.find("{}");
  for (int64_t b = 0; b < B; ++b) {
    const std::string text = tmpl_.text.substr(0, brace) + prompts[static_cast<size_t>(b)] + tmpl_.text.substr(brace + 2);
    std::vector<int32_t> t;
    if (bos_ >= 0) t.push_back(bos_);
    const std::vector<int32_t> body = tok_.encode(text);
    t.insert(t.end(), body.begin(), body.end());
    if (static_cast<int64_t>(t.size()) > L) t.resize(static_cast<size_t>(L));  // truncation, as the tokenizer does
    for (size_t i = 0; i < t.size(); ++i) ids[b][static_cast<int64_t>(i)] = t[i];
    mask[b].narrow(0, 0, static_cast<int64_t>(t.size())).fill_(1);
  }
  return {ids, mask};
}

PromptEmbeddings TextEncoder::encode(const std::vector<std::string>& prompts) const {
  if (prompts.empty()) throw Error("text encoder", "no prompt");
  const auto in = llm_inputs(prompts);
  text::DecoderLM::ForwardOptions f;
  f.logits = false;
  const int key = -(tmpl_.hidden_state_skip_layer + 1);
  f.hidden_states = {key};
  // Right padding: causal attention keeps it out of every prompt position.
  const at::Tensor h = llm_.forward(in.first, f).hidden_states.at(key);
  PromptEmbeddings e;
  e.states = h.narrow(1, crop_start_, tmpl_.max_length);
  e.mask = in.second.narrow(1, crop_start_, tmpl_.max_length).to(h.device());
  std::vector<int64_t> clip_ids;
  for (const std::string& p : prompts) {
    const auto padded = clip_tok_.encode_padded(p);
    clip_ids.insert(clip_ids.end(), padded.ids.begin(), padded.ids.end());
  }
  const at::Tensor cids = at::tensor(clip_ids, at::kLong).view({static_cast<int64_t>(prompts.size()), -1});
  e.pooled = clip_.forward(cids).pooled;
  return e;
}

void TextEncoder::to(const at::Device& device) {
  llm_.to(device);
  clip_.to(device);
}

}  // namespace xattn::hunyuan
