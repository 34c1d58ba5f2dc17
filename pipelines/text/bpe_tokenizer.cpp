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

// The code point starting at byte i of s: its length in bytes, or <= 0 for an invalid sequence.
utf8proc_ssize_t next_code_point(const std::string& s, size_t i, utf8proc_int32_t* cp) {
  return utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data() + i),
                          static_cast<utf8proc_ssize_t>(s.size() - i), cp);
}

// Appends code point cp to out as UTF-8.
void append_code_point(std::string& out, utf8proc_int32_t cp) {
  utf8proc_uint8_t buf[4];
  const auto len = utf8proc_encode_char(cp, buf);
  out.append(reinterpret_cast<char*>(buf), static_cast<size_t>(len));
}

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
  for (int b = 0; b < 256; ++b) append_code_point(out[b], cp[b]);
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
    const auto n = next_code_point(s, i, &cp);
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

// A compiled PCRE2 pattern (UTF, Unicode properties), shared between copies.
class Regex {
 public:
  Regex() = default;
  Regex(const std::string& pattern, const std::function<void(const std::string&)>& fail) {
    int err = 0;
    PCRE2_SIZE off = 0;
    pcre2_code* re = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.c_str()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP, &err, &off, nullptr);
    if (!re) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof(msg));
      fail("regex '" + pattern + "' does not compile at offset " + std::to_string(off) + ": " +
           reinterpret_cast<char*>(msg));
    }
    code_.reset(re, pcre2_code_free);
  }
  explicit operator bool() const { return static_cast<bool>(code_); }

  // Non-overlapping matches of s as [begin, end) byte ranges. After an empty match the search
  // resumes one character later; the empty match itself is returned (a split point, as in
  // `tokenizers`).
  std::vector<std::pair<size_t, size_t>> matches(const std::string& s) const {
    std::vector<std::pair<size_t, size_t>> out;
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(code_.get(), nullptr);
    size_t pos = 0;
    while (pos <= s.size()) {
      const int rc = pcre2_match(code_.get(), reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), pos, 0, md, nullptr);
      if (rc < 0) break;
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      const size_t b = ov[0], e = ov[1];
      out.emplace_back(b, e);
      if (e == b) {
        if (b >= s.size()) break;
        pos = b + utf8_len(static_cast<unsigned char>(s[b]));
      } else {
        pos = e;
      }
    }
    pcre2_match_data_free(md);
    return out;
  }

 private:
  std::shared_ptr<pcre2_code> code_;
};

// Unicode lower case, one code point at a time (Rust's char::to_lowercase, which `tokenizers`
// uses: no final-sigma rule; U+0130 becomes "i" + U+0307).
std::string lowercase(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    utf8proc_int32_t cp = 0;
    const auto n = next_code_point(s, i, &cp);
    if (n <= 0) {  // invalid byte: kept
      out += s[i++];
      continue;
    }
    i += static_cast<size_t>(n);
    if (cp == 0x130) {
      out += "i\xCC\x87";
      continue;
    }
    append_code_point(out, utf8proc_tolower(cp));
  }
  return out;
}

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
  // Normaliser steps in order.
  struct NormStep {
    enum class Kind { kNfc, kLowercase, kReplace } kind;
    Regex pattern;        // kReplace with a regex
    std::string literal;  // kReplace with a string
    std::string content;  // kReplace: the replacement
  };
  std::vector<NormStep> normalizers;
  // Pre-tokenizer regex stages, applied in order to every piece of the previous stage.
  struct SplitStep {
    Regex re;
    bool keep_gaps = true;  // Isolated: matches and the text between them; Removed+invert: matches only
  };
  std::vector<SplitStep> splits;
  bool add_prefix_space = false;
  bool ignore_merges = false;
  std::string end_of_word_suffix;  // CLIP: "</w>" on the last symbol of each piece
  int32_t unk_id = -1;
  std::vector<std::string> bytes = byte_symbols();
  std::unordered_map<std::string, unsigned char> symbol_byte;

  [[noreturn]] void fail(const std::string& what) const { throw Error("tokenizer", origin + ": " + what); }

  void set_vocab(const nlohmann::json& v) {
    for (auto it = v.begin(); it != v.end(); ++it) {
      const int32_t id = it.value().get<int32_t>();
      if (id < 0) fail("vocabulary id " + std::to_string(id) + " for '" + it.key() + "' is negative");
      vocab[it.key()] = id;
      if (id >= static_cast<int32_t>(id_to_token.size())) id_to_token.resize(static_cast<size_t>(id) + 1);
      id_to_token[static_cast<size_t>(id)] = it.key();
    }
  }

  void add_merge(const std::string& line) {
    const auto sp = line.find(' ');
    if (sp == std::string::npos || sp == 0 || sp + 1 >= line.size()) fail("merge '" + line + "' is not 'a b'");
    add_merge(line.substr(0, sp), line.substr(sp + 1));
  }
  void add_merge(const std::string& a, const std::string& b) {
    merge_rank.emplace(a + '\x01' + b, static_cast<int>(merge_rank.size()));
  }

  void compile_normalizer(const nlohmann::json& n) {
    if (n.is_null()) return;
    const std::string type = n.value("type", "");
    if (type == "NFC") {
      normalizers.push_back({NormStep::Kind::kNfc, {}, {}, {}});
    } else if (type == "Lowercase") {
      normalizers.push_back({NormStep::Kind::kLowercase, {}, {}, {}});
    } else if (type == "Replace") {
      NormStep st{NormStep::Kind::kReplace, {}, {}, n.at("content").get<std::string>()};
      const auto& pat = n.at("pattern");
      if (pat.contains("Regex")) st.pattern = Regex(pat["Regex"].get<std::string>(), [&](const std::string& m) { fail(m); });
      else st.literal = pat.at("String").get<std::string>();
      if (!st.pattern && st.literal.empty()) fail("Replace normalizer with an empty pattern");
      normalizers.push_back(std::move(st));
    } else if (type == "Sequence") {
      for (const auto& x : n.at("normalizers")) compile_normalizer(x);
    } else {
      fail("normalizer " + type + " is not supported (NFC, Lowercase, Replace, Sequence or none)");
    }
  }

  void load(const nlohmann::json& j) {
    const auto& model = j.at("model");
    if (model.value("type", "") != "BPE") fail("model.type must be BPE, got " + model.value("type", std::string("?")));
    set_vocab(model.at("vocab"));
    for (const auto& m : model.at("merges")) {
      if (m.is_array()) add_merge(m.at(0).get<std::string>(), m.at(1).get<std::string>());
      else add_merge(m.get<std::string>());
    }
    ignore_merges = model.value("ignore_merges", false);
    if (model.contains("end_of_word_suffix") && model["end_of_word_suffix"].is_string())
      end_of_word_suffix = model["end_of_word_suffix"].get<std::string>();
    if (model.contains("continuing_subword_prefix") && model["continuing_subword_prefix"].is_string() &&
        !model["continuing_subword_prefix"].get<std::string>().empty())
      fail("continuing_subword_prefix is not supported");
    if (model.contains("unk_token") && model["unk_token"].is_string()) {
      auto it = vocab.find(model["unk_token"].get<std::string>());
      if (it != vocab.end()) unk_id = it->second;
    }
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

    if (j.contains("normalizer")) compile_normalizer(j["normalizer"]);

    // Pre-tokenizer: Split(regex, Isolated | Removed+invert) stages and a ByteLevel step (its
    // own GPT-2 regex when use_regex), in a Sequence or alone.
    bool byte_level = false;
    std::function<void(const nlohmann::json&)> pre = [&](const nlohmann::json& p) {
      if (p.is_null()) return;
      const std::string type = p.value("type", "");
      if (type == "Sequence") {
        for (const auto& x : p.at("pretokenizers")) pre(x);
      } else if (type == "Split") {
        const std::string behavior = p.value("behavior", "");
        const bool invert = p.value("invert", false);
        SplitStep st;
        if (behavior == "Isolated" && !invert) st.keep_gaps = true;
        else if (behavior == "Removed" && invert) st.keep_gaps = false;
        else fail("Split pre-tokenizer must be behavior Isolated (invert false) or Removed (invert true)");
        const auto& pat = p.at("pattern");
        if (!pat.contains("Regex")) fail("Split pattern must be a Regex");
        st.re = Regex(pat["Regex"].get<std::string>(), [&](const std::string& m) { fail("pre-tokenizer " + m); });
        splits.push_back(std::move(st));
      } else if (type == "ByteLevel") {
        byte_level = true;
        add_prefix_space = p.value("add_prefix_space", false);
        if (p.value("use_regex", true))
          splits.push_back({Regex(kGpt2Pattern, [&](const std::string& m) { fail(m); }), true});
      } else {
        fail("pre-tokenizer " + type + " is not supported (Split, ByteLevel, Sequence)");
      }
    };
    if (j.contains("pre_tokenizer")) pre(j["pre_tokenizer"]);
    if (!byte_level) fail("only byte-level BPE is supported: the pre-tokenizer has no ByteLevel step");
    finish();
  }

  void finish() {
    for (int b = 0; b < 256; ++b) symbol_byte[bytes[static_cast<size_t>(b)]] = static_cast<unsigned char>(b);
  }

  std::string normalize(std::string s) const {
    for (const NormStep& st : normalizers) {
      if (s.empty()) break;
      switch (st.kind) {
        case NormStep::Kind::kNfc: {
          utf8proc_uint8_t* out = utf8proc_NFC(reinterpret_cast<const utf8proc_uint8_t*>(s.c_str()));
          if (!out) break;  // invalid UTF-8: left as is (bytes still encode)
          s = reinterpret_cast<char*>(out);
          std::free(out);
          break;
        }
        case NormStep::Kind::kLowercase:
          s = lowercase(s);
          break;
        case NormStep::Kind::kReplace: {
          std::string r;
          size_t pos = 0;
          if (st.pattern) {
            for (const auto& m : st.pattern.matches(s)) {
              r.append(s, pos, m.first - pos);
              r += st.content;
              pos = m.second;
            }
          } else {
            for (size_t at = s.find(st.literal); at != std::string::npos; at = s.find(st.literal, pos)) {
              r.append(s, pos, at - pos);
              r += st.content;
              pos = at + st.literal.size();
            }
          }
          r.append(s, pos, std::string::npos);
          s.swap(r);
          break;
        }
      }
    }
    return s;
  }

  // Pieces after every Split stage.
  std::vector<std::string> split(const std::string& s) const {
    std::vector<std::string> pieces{s};
    for (const SplitStep& st : splits) {
      std::vector<std::string> next;
      for (const std::string& p : pieces) {
        size_t pos = 0;
        for (const auto& m : st.re.matches(p)) {
          if (st.keep_gaps && m.first > pos) next.push_back(p.substr(pos, m.first - pos));
          if (m.second > m.first) next.push_back(p.substr(m.first, m.second - m.first));
          pos = std::max(pos, m.second);
        }
        if (st.keep_gaps && pos < p.size()) next.push_back(p.substr(pos));
      }
      pieces.swap(next);
    }
    return pieces;
  }

  void bpe(const std::string& piece, std::vector<int32_t>& ids) const {
    std::string mapped;
    std::vector<std::string> sym;
    for (unsigned char c : piece) {
      sym.push_back(bytes[c]);
      mapped += bytes[c];
    }
    if (sym.empty()) return;
    if (!end_of_word_suffix.empty()) {
      sym.back() += end_of_word_suffix;
      mapped += end_of_word_suffix;
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
      if (it != vocab.end()) ids.push_back(it->second);
      else if (unk_id >= 0) ids.push_back(unk_id);
      else fail("token '" + t + "' produced by the merges is not in the vocabulary");
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

namespace {
std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("tokenizer", path + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
}  // namespace

BpeTokenizer BpeTokenizer::from_file(const std::string& path) { return from_json(read_text(path), path); }

// CLIP's published pipeline (its tokenizer code and the `tokenizers` conversion of it): NFC,
// whitespace runs to one space, lower case; pieces are the matches of CLIP's pattern (the text
// between them is dropped); byte-level symbols with "</w>" on each piece's last symbol.
BpeTokenizer BpeTokenizer::from_clip_files(const std::string& vocab_json, const std::string& merges_txt) {
  return from_clip_texts(read_text(vocab_json), read_text(merges_txt), vocab_json);
}

BpeTokenizer BpeTokenizer::from_clip_texts(const std::string& vocab_text, const std::string& merges_text,
                                           const std::string& origin) {
  BpeTokenizer t;
  Impl& m = *t.impl_;
  m.origin = origin;
  nlohmann::json vocab;
  try {
    vocab = nlohmann::json::parse(vocab_text);
    if (!vocab.is_object()) m.fail("expected a JSON object of token -> id");
    m.set_vocab(vocab);
  } catch (const nlohmann::json::exception& e) {
    m.fail(std::string("not a vocabulary: ") + e.what());
  }
  std::istringstream merges(merges_text);
  std::string line;
  while (std::getline(merges, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line.rfind("#version", 0) == 0) continue;
    m.add_merge(line);
  }
  const auto fail = [&](const std::string& msg) { m.fail(msg); };
  m.normalizers.push_back({Impl::NormStep::Kind::kNfc, {}, {}, {}});
  m.normalizers.push_back({Impl::NormStep::Kind::kReplace, Regex(R"(\s+)", fail), {}, " "});
  m.normalizers.push_back({Impl::NormStep::Kind::kLowercase, {}, {}, {}});
  m.splits.push_back(
      {Regex(R"(<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+)", fail),
       false});
  m.end_of_word_suffix = "</w>";
  for (const char* special : {"<|startoftext|>", "<|endoftext|>"}) {
    auto it = m.vocab.find(special);
    if (it == m.vocab.end()) m.fail(std::string("the vocabulary has no ") + special);
    m.added.push_back({it->second, special, true});
  }
  m.unk_id = m.vocab.at("<|endoftext|>");
  for (size_t i = 0; i < m.added.size(); ++i) m.added_by_id[m.added[i].id] = i;
  m.finish();
  return t;
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
    std::string tok = m.id_to_token[static_cast<size_t>(id)];
    bool word_end = false;
    const std::string& suffix = m.end_of_word_suffix;
    if (!suffix.empty() && tok.size() >= suffix.size() &&
        tok.compare(tok.size() - suffix.size(), suffix.size(), suffix) == 0) {
      tok.resize(tok.size() - suffix.size());
      word_end = true;
    }
    for (size_t i = 0; i < tok.size();) {
      const size_t n = utf8_len(static_cast<unsigned char>(tok[i]));
      auto it = m.symbol_byte.find(tok.substr(i, n));
      if (it == m.symbol_byte.end())
        throw Error("tokenizer", m.origin + ": token " + std::to_string(id) + " is not byte-level");
      pending += static_cast<char>(it->second);
      i += n;
    }
    if (word_end) pending += ' ';
  }
  flush();
  if (!m.end_of_word_suffix.empty()) {  // CLIP: words end in a space; the text is stripped
    const size_t b = out.find_first_not_of(' ');
    out = b == std::string::npos ? std::string() : out.substr(b, out.find_last_not_of(' ') - b + 1);
  }
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
