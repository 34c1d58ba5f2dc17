#include "pipelines/text/bpe_tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>

#include "core/error.h"

namespace xattn::text {
namespace {

// GPT-2 bytes_to_unicode: printable bytes map to themselves, the rest to U+0100 onwards.
std::vector<std::string> byte_symbols() {
  std::vector<int> cp(256, -1);
  for (int b = '!'; b <= '~'; ++b) cp[b] = b;
  for (int b = 0xA1; b <= 0xAC; ++b) cp[b] = b;
  for (int b = 0xAE; b <= 0xFF; ++b) cp[b] = b;
  int n = 0;
  for (int b = 0; b < 256; ++b)
    if (cp[b] < 0) cp[b] = 256 + n++;
  std::vector<std::string> out(256);
  for (int b = 0; b < 256; ++b) {
    utf8proc_uint8_t buf[4];
    const auto len = utf8proc_encode_char(cp[b], buf);
    out[b] = std::string(reinterpret_cast<char*>(buf), static_cast<size_t>(len));
  }
  return out;
}

// Length of the UTF-8 sequence starting with byte c (1 for invalid lead bytes).
size_t utf8_len(unsigned char c) {
  if (c < 0x80) return 1;
  if ((c >> 5) == 0x6) return 2;
  if ((c >> 4) == 0xE) return 3;
  if ((c >> 3) == 0x1E) return 4;
  return 1;
}

// Lossy UTF-8: invalid sequences become U+FFFD (one per maximal invalid run start, like Rust).
std::string utf8_lossy(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    utf8proc_int32_t cp = 0;
    const auto n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data() + i),
                                    static_cast<utf8proc_ssize_t>(s.size() - i), &cp);
    if (n > 0) {
      out.append(s, i, static_cast<size_t>(n));
      i += static_cast<size_t>(n);
      continue;
    }
    out += "\xEF\xBF\xBD";
    // Skip the longest prefix of a valid sequence (Rust's maximal-subpart rule).
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t want = utf8_len(c), k = 1;
    while (want > 1 && k < want && i + k < s.size() && (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80) ++k;
    i += (want > 1) ? k : 1;
  }
  return out;
}

const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

struct AddedToken {
  int32_t id;
  std::string content;
  bool special;
};

}  // namespace

struct BpeTokenizer::Impl {
  std::string origin;
  std::unordered_map<std::string, int32_t> vocab;
  std::vector<std::string> id_to_token;  // model ids
  std::unordered_map<std::string, int> merge_rank;  // "a\x01b" -> rank
  std::vector<AddedToken> added;                     // longest content first
  std::unordered_map<int32_t, size_t> added_by_id;
  bool nfc = false;
  bool add_prefix_space = false;
  bool ignore_merges = false;
  std::string pattern;
  pcre2_code* re = nullptr;
  std::vector<std::string> bytes = byte_symbols();
  std::unordered_map<std::string, unsigned char> symbol_byte;

  ~Impl() {
    if (re) pcre2_code_free(re);
  }

  [[noreturn]] void fail(const std::string& what) const { throw Error("tokenizer", origin + ": " + what); }

  void load(const nlohmann::json& j) {
    const auto& model = j.at("model");
    if (model.value("type", "") != "BPE") fail("model.type must be BPE, got " + model.value("type", std::string("?")));
    for (auto it = model.at("vocab").begin(); it != model.at("vocab").end(); ++it) {
      const int32_t id = it.value().get<int32_t>();
      vocab[it.key()] = id;
      if (id >= static_cast<int32_t>(id_to_token.size())) id_to_token.resize(static_cast<size_t>(id) + 1);
      id_to_token[static_cast<size_t>(id)] = it.key();
    }
    int rank = 0;
    for (const auto& m : model.at("merges")) {
      std::string a, b;
      if (m.is_array()) {
        a = m.at(0).get<std::string>();
        b = m.at(1).get<std::string>();
      } else {
        const std::string s = m.get<std::string>();
        const auto sp = s.find(' ');
        if (sp == std::string::npos) fail("merge '" + s + "' has no space");
        a = s.substr(0, sp);
        b = s.substr(sp + 1);
      }
      merge_rank.emplace(a + '\x01' + b, rank++);
    }
    ignore_merges = model.value("ignore_merges", false);
    if (model.contains("byte_fallback") && model["byte_fallback"].is_boolean() && model["byte_fallback"].get<bool>())
      fail("byte_fallback BPE (SentencePiece style) is not supported; this reads byte-level BPE");

    if (j.contains("added_tokens"))
      for (const auto& t : j["added_tokens"]) {
        AddedToken a{t.at("id").get<int32_t>(), t.at("content").get<std::string>(), t.value("special", false)};
        if (a.content.empty()) continue;
        added.push_back(a);
      }
    std::stable_sort(added.begin(), added.end(),
                     [](const AddedToken& x, const AddedToken& y) { return x.content.size() > y.content.size(); });
    for (size_t i = 0; i < added.size(); ++i) added_by_id[added[i].id] = i;

    // Normaliser: none, NFC, or a Sequence of those.
    std::function<void(const nlohmann::json&)> norm = [&](const nlohmann::json& n) {
      if (n.is_null()) return;
      const std::string type = n.value("type", "");
      if (type == "NFC") nfc = true;
      else if (type == "Sequence") for (const auto& x : n.at("normalizers")) norm(x);
      else fail("normalizer " + type + " is not supported (NFC or none)");
    };
    if (j.contains("normalizer")) norm(j["normalizer"]);

    // Pre-tokenizer: [Split(regex, Isolated)] + ByteLevel(use_regex false), or ByteLevel alone.
    bool byte_level = false;
    std::function<void(const nlohmann::json&)> pre = [&](const nlohmann::json& p) {
      if (p.is_null()) return;
      const std::string type = p.value("type", "");
      if (type == "Sequence") {
        for (const auto& x : p.at("pretokenizers")) pre(x);
      } else if (type == "Split") {
        if (p.value("behavior", "") != "Isolated" || p.value("invert", false))
          fail("Split pre-tokenizer must be behavior Isolated, invert false");
        const auto& pat = p.at("pattern");
        if (!pat.contains("Regex")) fail("Split pattern must be a Regex");
        pattern = pat["Regex"].get<std::string>();
      } else if (type == "ByteLevel") {
        byte_level = true;
        add_prefix_space = p.value("add_prefix_space", false);
        if (p.value("use_regex", true)) {
          if (!pattern.empty()) fail("both a Split regex and ByteLevel use_regex");
          pattern = kGpt2Pattern;
        }
      } else {
        fail("pre-tokenizer " + type + " is not supported (Split, ByteLevel, Sequence)");
      }
    };
    if (j.contains("pre_tokenizer")) pre(j["pre_tokenizer"]);
    if (!byte_level) fail("only byte-level BPE is supported: the pre-tokenizer has no ByteLevel step");
    if (!pattern.empty()) {
      int err = 0;
      PCRE2_SIZE off = 0;
      re = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.c_str()), pattern.size(), PCRE2_UTF | PCRE2_UCP, &err,
                         &off, nullptr);
      if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof(msg));
        fail("pre-tokenizer regex does not compile at offset " + std::to_string(off) + ": " +
             reinterpret_cast<char*>(msg));
      }
    }
    for (int b = 0; b < 256; ++b) symbol_byte[bytes[static_cast<size_t>(b)]] = static_cast<unsigned char>(b);
  }

  std::string normalize(const std::string& s) const {
    if (!nfc || s.empty()) return s;
    utf8proc_uint8_t* out = utf8proc_NFC(reinterpret_cast<const utf8proc_uint8_t*>(s.c_str()));
    if (!out) return s;  // invalid UTF-8: left as is (bytes still encode)
    std::string r(reinterpret_cast<char*>(out));
    std::free(out);
    return r;
  }

  // The regex pieces of one segment, gaps included (Split behaviour "Isolated").
  std::vector<std::string> split(const std::string& s) const {
    std::vector<std::string> out;
    if (!re) {
      out.push_back(s);
      return out;
    }
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(re, nullptr);
    size_t pos = 0;
    while (pos < s.size()) {
      const int rc = pcre2_match(re, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), pos, 0, md, nullptr);
      if (rc < 0) {
        out.push_back(s.substr(pos));
        break;
      }
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      size_t b = ov[0], e = ov[1];
      if (b > pos) out.push_back(s.substr(pos, b - pos));
      if (e == b) {  // empty match: take one character as a gap
        e = b + utf8_len(static_cast<unsigned char>(s[b]));
        if (b >= s.size()) break;
      }
      out.push_back(s.substr(b, e - b));
      pos = e;
    }
    pcre2_match_data_free(md);
    return out;
  }

  void bpe(const std::string& piece, std::vector<int32_t>& ids) const {
    std::string mapped;
    std::vector<std::string> sym;
    for (unsigned char c : piece) {
      sym.push_back(bytes[c]);
      mapped += bytes[c];
    }
    if (ignore_merges) {
      auto it = vocab.find(mapped);
      if (it != vocab.end()) {
        ids.push_back(it->second);
        return;
      }
    }
    while (sym.size() > 1) {
      int best = std::numeric_limits<int>::max();
      size_t at = 0;
      for (size_t i = 0; i + 1 < sym.size(); ++i) {
        auto it = merge_rank.find(sym[i] + '\x01' + sym[i + 1]);
        if (it != merge_rank.end() && it->second < best) {
          best = it->second;
          at = i;
        }
      }
      if (best == std::numeric_limits<int>::max()) break;
      // Merge every occurrence of this pair, left to right.
      const std::string a = sym[at], b = sym[at + 1];
      std::vector<std::string> next;
      for (size_t i = 0; i < sym.size();) {
        if (i + 1 < sym.size() && sym[i] == a && sym[i + 1] == b) {
          next.push_back(a + b);
          i += 2;
        } else {
          next.push_back(sym[i]);
          ++i;
        }
      }
      sym.swap(next);
    }
    for (const auto& t : sym) {
      auto it = vocab.find(t);
      if (it == vocab.end()) fail("token '" + t + "' produced by the merges is not in the vocabulary");
      ids.push_back(it->second);
    }
  }

  void encode_plain(const std::string& raw, std::vector<int32_t>& ids) const {
    if (raw.empty()) return;
    std::string s = normalize(raw);
    if (add_prefix_space && !s.empty() && s[0] != ' ') s = " " + s;
    for (const std::string& piece : split(s)) bpe(piece, ids);
  }
};

BpeTokenizer::BpeTokenizer() : impl_(std::make_unique<Impl>()) {}
BpeTokenizer::~BpeTokenizer() = default;
BpeTokenizer::BpeTokenizer(BpeTokenizer&&) noexcept = default;
BpeTokenizer& BpeTokenizer::operator=(BpeTokenizer&&) noexcept = default;

BpeTokenizer BpeTokenizer::from_json(const std::string& text, const std::string& origin) {
  BpeTokenizer t;
  t.impl_->origin = origin;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    throw Error("tokenizer", origin + ": not valid JSON: " + e.what());
  }
  try {
    t.impl_->load(j);
  } catch (const nlohmann::json::exception& e) {
    throw Error("tokenizer", origin + ": unexpected structure: " + e.what());
  }
  return t;
}

BpeTokenizer BpeTokenizer::from_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("tokenizer", path + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  return from_json(ss.str(), path);
}

std::vector<int32_t> BpeTokenizer::encode(const std::string& text) const {
  const Impl& m = *impl_;
  std::vector<int32_t> ids;
  size_t start = 0, i = 0;
  while (i < text.size()) {
    const AddedToken* hit = nullptr;
    for (const AddedToken& a : m.added)  // longest first
      if (text.compare(i, a.content.size(), a.content) == 0) {
        hit = &a;
        break;
      }
    if (!hit) {
      ++i;
      continue;
    }
    m.encode_plain(text.substr(start, i - start), ids);
    ids.push_back(hit->id);
    i += hit->content.size();
    start = i;
  }
  m.encode_plain(text.substr(start), ids);
  return ids;
}

std::string BpeTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  const Impl& m = *impl_;
  std::string out, pending;  // pending: bytes of consecutive byte-level tokens
  auto flush = [&] {
    out += utf8_lossy(pending);
    pending.clear();
  };
  for (int32_t id : ids) {
    auto a = m.added_by_id.find(id);
    if (a != m.added_by_id.end()) {
      const AddedToken& t = m.added[a->second];
      flush();
      if (!(skip_special_tokens && t.special)) out += t.content;
      continue;
    }
    if (id < 0 || id >= static_cast<int32_t>(m.id_to_token.size()) || m.id_to_token[static_cast<size_t>(id)].empty())
      throw Error("tokenizer", m.origin + ": unknown token id " + std::to_string(id));
    const std::string& tok = m.id_to_token[static_cast<size_t>(id)];
    for (size_t i = 0; i < tok.size();) {
      const size_t n = utf8_len(static_cast<unsigned char>(tok[i]));
      auto it = m.symbol_byte.find(tok.substr(i, n));
      if (it == m.symbol_byte.end())
        throw Error("tokenizer", m.origin + ": token " + std::to_string(id) + " is not byte-level");
      pending += static_cast<char>(it->second);
      i += n;
    }
  }
  flush();
  return out;
}

int32_t BpeTokenizer::token_to_id(const std::string& token) const {
  for (const AddedToken& a : impl_->added)
    if (a.content == token) return a.id;
  auto it = impl_->vocab.find(token);
  return it == impl_->vocab.end() ? -1 : it->second;
}

std::string BpeTokenizer::id_to_token(int32_t id) const {
  auto a = impl_->added_by_id.find(id);
  if (a != impl_->added_by_id.end()) return impl_->added[a->second].content;
  if (id < 0 || id >= static_cast<int32_t>(impl_->id_to_token.size()) || impl_->id_to_token[static_cast<size_t>(id)].empty())
    throw Error("tokenizer", impl_->origin + ": unknown token id " + std::to_string(id));
  return impl_->id_to_token[static_cast<size_t>(id)];
}

int64_t BpeTokenizer::vocab_size() const {
  int64_t n = static_cast<int64_t>(impl_->vocab.size());
  for (const AddedToken& a : impl_->added)
    if (!impl_->vocab.count(a.content)) ++n;
  return n;
}

}  // namespace xattn::text
