#include "pipelines/text/clip_tokenizer.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace xattn::text {
namespace {

namespace fs = std::filesystem;

nlohmann::json read_json_if_present(const fs::path& p) {
  if (!fs::exists(p)) return nlohmann::json::object();
  std::ifstream in(p);
  try {
    return nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    throw Error("tokenizer", p.string() + ": not valid JSON: " + e.what());
  }
}

// A special token entry is a string or {"content": "..."}.
std::string token_text(const nlohmann::json& j, const char* key, const std::string& fallback) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  const auto& v = j[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content")) return v["content"].get<std::string>();
  return fallback;
}

}  // namespace

ClipTokenizer ClipTokenizer::from_dir(const std::string& dir) {
  const fs::path d(dir);
  if (!fs::is_directory(d)) throw Error("tokenizer", dir + ": not a directory");
  const bool has_json = fs::exists(d / "tokenizer.json");
  if (!has_json && (!fs::exists(d / "vocab.json") || !fs::exists(d / "merges.txt")))
    throw Error("tokenizer", dir + ": needs tokenizer.json or vocab.json + merges.txt (a CLIP tokenizer folder)");
  ClipTokenizer t(has_json ? BpeTokenizer::from_file((d / "tokenizer.json").string())
                           : BpeTokenizer::from_clip_files((d / "vocab.json").string(), (d / "merges.txt").string()));
  const nlohmann::json map = read_json_if_present(d / "special_tokens_map.json");
  const nlohmann::json cfg = read_json_if_present(d / "tokenizer_config.json");
  auto pick = [&](const char* key, const std::string& fallback) {
    return token_text(map, key, token_text(cfg, key, fallback));
  };
  auto id_of = [&](const std::string& token, const char* role) {
    const int32_t id = t.bpe_.token_to_id(token);
    if (id < 0) throw Error("tokenizer", dir + ": the " + std::string(role) + " token " + token + " is not in the vocabulary");
    return id;
  };
  t.bos_ = id_of(pick("bos_token", "<|startoftext|>"), "bos");
  t.eos_ = id_of(pick("eos_token", "<|endoftext|>"), "eos");
  t.pad_ = id_of(pick("pad_token", "<|endoftext|>"), "pad");
  if (cfg.contains("model_max_length") && cfg["model_max_length"].is_number_integer()) {
    const int64_t n = cfg["model_max_length"].get<int64_t>();
    if (n >= 2 && n <= 1 << 20) t.max_length_ = n;  // HF writes a huge sentinel when unset
  }
  return t;
}

ClipTokenizer ClipTokenizer::from_bpe(BpeTokenizer bpe) {
  ClipTokenizer t(std::move(bpe));
  for (const char* special : {"<|startoftext|>", "<|endoftext|>"})
    if (t.bpe_.token_to_id(special) < 0) throw Error("tokenizer", std::string("CLIP tokenizer without ") + special);
  t.bos_ = t.bpe_.token_to_id("<|startoftext|>");
  t.eos_ = t.pad_ = t.bpe_.token_to_id("<|endoftext|>");
  return t;
}

std::vector<int32_t> ClipTokenizer::encode(const std::string& text) const {
  std::vector<int32_t> ids{bos_};
  const std::vector<int32_t> body = bpe_.encode(text);
  ids.insert(ids.end(), body.begin(), body.end());
  ids.push_back(eos_);
  return ids;
}

ClipTokenizer::Padded ClipTokenizer::encode_padded(const std::string& text, int64_t max_length) const {
  if (max_length < 0) max_length = max_length_;
  if (max_length < 2) throw Error("tokenizer", "max_length " + std::to_string(max_length) + " leaves no room for the two special tokens");
  std::vector<int32_t> body = bpe_.encode(text);
  if (static_cast<int64_t>(body.size()) > max_length - 2) body.resize(static_cast<size_t>(max_length - 2));
  Padded p;
  p.ids.reserve(static_cast<size_t>(max_length));
  p.ids.push_back(bos_);
  p.ids.insert(p.ids.end(), body.begin(), body.end());
  p.ids.push_back(eos_);
  p.length = static_cast<int64_t>(p.ids.size());
  p.ids.resize(static_cast<size_t>(max_length), pad_);
  return p;
}

std::string ClipTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  return bpe_.decode(ids, skip_special_tokens);
}

}  // namespace xattn::text
