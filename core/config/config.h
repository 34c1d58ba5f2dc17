// Typed configuration structs from YAML, with defaults defined once.
//
// A config struct lists its fields once, in a `fields` template; its member initialisers
// are the defaults. The same list decodes YAML (unknown keys, wrong types and
// out-of-range values are errors naming the key path and line), writes the resolved
// config back as YAML, and documents every key for --help.
//
//   struct Sampling {
//     int steps = 50;
//     double shift = 7.0;
//     template <class V> void fields(V& v) {
//       v.field("steps", steps, "denoising steps", config::at_least(1));
//       v.field("shift", shift, "flow-matching shift", config::range(0.0, 100.0));
//     }
//     // optional cross-field check; return "" when valid
//     std::string check() const { return ""; }
//   };
//   Sampling s = config::load<Sampling>("run.yaml", {"steps=30"});
//   std::string yaml = config::to_yaml(s);
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/config/node.h"
#include "core/error.h"

namespace xattn::config {

// A value check: returns "" when the value is acceptable, else the reason.
template <class T>
using Check = std::function<std::string(const T&)>;

template <class T>
Check<T> range(T lo, T hi) {
  return [lo, hi](const T& v) -> std::string {
    if (v < lo || v > hi) return str_cat("must be in [", lo, ", ", hi, "], got ", v);
    return {};
  };
}
template <class T>
Check<T> at_least(T lo) {
  return [lo](const T& v) -> std::string {
    if (v < lo) return str_cat("must be at least ", lo, ", got ", v);
    return {};
  };
}
template <class T>
Check<T> one_of(std::vector<T> allowed) {
  return [allowed](const T& v) -> std::string {
    for (const T& a : allowed)
      if (a == v) return {};
    std::string list;
    for (size_t i = 0; i < allowed.size(); ++i) list += (i ? ", " : "") + str_cat(allowed[i]);
    return str_cat("must be one of ", list, "; got ", v);
  };
}
// Applies an element check to each element of a list.
template <class T>
Check<std::vector<T>> each(Check<T> inner) {
  return [inner](const std::vector<T>& v) -> std::string {
    for (size_t i = 0; i < v.size(); ++i) {
      std::string e = inner(v[i]);
      if (!e.empty()) return str_cat("element ", i, " ", e);
    }
    return {};
  };
}
template <class T>
Check<std::optional<T>> if_set(Check<T> inner) {
  return [inner](const std::optional<T>& v) -> std::string { return v ? inner(*v) : std::string(); };
}

// One documented key, for --help and docs.
struct FieldDoc {
  std::string path;
  std::string type;
  std::string default_value;
  std::string help;
};

namespace detail {

template <class T>
struct is_vector : std::false_type {};
template <class T, class A>
struct is_vector<std::vector<T, A>> : std::true_type {};
template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};
template <class T>
struct is_string_map : std::false_type {};
template <class T>
struct is_string_map<std::map<std::string, T>> : std::true_type {};

struct ProbeVisitor {
  template <class T, class C = Check<T>>
  void field(const char*, T&, const char*, C = {}) {}
};
template <class T, class = void>
struct is_struct : std::false_type {};
template <class T>
struct is_struct<T, std::void_t<decltype(std::declval<T&>().fields(std::declval<ProbeVisitor&>()))>>
    : std::true_type {};

template <class T, class = void>
struct has_check : std::false_type {};
template <class T>
struct has_check<T, std::void_t<decltype(std::declval<const T&>().check())>> : std::true_type {};

std::string format_double(double v);

template <class T>
std::string type_name() {
  if constexpr (std::is_same_v<T, bool>) return "bool";
  else if constexpr (std::is_integral_v<T>) return "int";
  else if constexpr (std::is_floating_point_v<T>) return "number";
  else if constexpr (std::is_same_v<T, std::string>) return "string";
  else if constexpr (is_vector<T>::value) return "list of " + type_name<typename T::value_type>();
  else if constexpr (is_optional<T>::value) return type_name<typename T::value_type>() + " or null";
  else if constexpr (is_string_map<T>::value) return "map of " + type_name<typename T::mapped_type>();
  else return "map";
}

template <class T>
void decode_value(const Node& node, T& out);

class Decoder {
 public:
  explicit Decoder(const Node& node) : node_(node) {
    if (!node_.is_null() && !node_.is_map())
      throw Error("config", node_.where() + ": expected a map of settings, got " + node_.scalar());
  }

  template <class T, class C = Check<T>>
  void field(const char* key, T& value, const char* /*help*/, C check = {}) {
    known_.emplace_back(key);
    std::string where = (node_.path().empty() ? std::string(key) : node_.path() + "." + key) + " (default)";
    if (node_.has(key)) {
      Node child = node_.get(key);
      decode_value(child, value);
      where = child.where();
    }
    if (check) {
      const std::string err = Check<T>(check)(value);
      if (!err.empty()) throw Error("config", where + ": " + err);
    }
  }

  void finish() const {
    if (!node_.is_map()) return;
    for (const std::string& k : node_.keys()) {
      bool ok = false;
      for (const std::string& known : known_) ok = ok || known == k;
      if (!ok) {
        std::string list;
        for (size_t i = 0; i < known_.size(); ++i) list += (i ? ", " : "") + known_[i];
        throw Error("config", node_.get(k).where() + ": unknown key '" + k + "' (expected one of: " + list + ")");
      }
    }
  }

 private:
  Node node_;
  std::vector<std::string> known_;
};

template <class T>
void decode_value(const Node& node, T& out) {
  if constexpr (std::is_same_v<T, bool>) {
    out = node.as_bool();
  } else if constexpr (std::is_integral_v<T>) {
    const int64_t v = node.as_int();
    if (v < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
        (v > 0 && static_cast<uint64_t>(v) > static_cast<uint64_t>(std::numeric_limits<T>::max())))
      throw Error("config", node.where() + ": integer " + std::to_string(v) + " does not fit");
    out = static_cast<T>(v);
  } else if constexpr (std::is_floating_point_v<T>) {
    out = static_cast<T>(node.as_double());
  } else if constexpr (std::is_same_v<T, std::string>) {
    out = node.as_string();
  } else if constexpr (is_optional<T>::value) {
    if (node.is_null()) {
      out.reset();
    } else {
      typename T::value_type v{};
      if (out) v = *out;
      decode_value(node, v);
      out = std::move(v);
    }
  } else if constexpr (is_vector<T>::value) {
    if (!node.is_sequence())
      throw Error("config", node.where() + ": expected a list, got " + node.scalar());
    T result;
    for (size_t i = 0; i < node.size(); ++i) {
      typename T::value_type v{};
      decode_value(node.at(i), v);
      result.push_back(std::move(v));
    }
    out = std::move(result);
  } else if constexpr (is_string_map<T>::value) {
    if (!node.is_map()) throw Error("config", node.where() + ": expected a map, got " + node.scalar());
    T result;
    for (const std::string& k : node.keys()) {
      typename T::mapped_type v{};
      decode_value(node.get(k), v);
      result.emplace(k, std::move(v));
    }
    out = std::move(result);
  } else {
    static_assert(is_struct<T>::value, "config field type not supported");
    Decoder d(node);
    out.fields(d);
    d.finish();
    if constexpr (has_check<T>::value) {
      const std::string err = static_cast<const T&>(out).check();
      if (!err.empty()) throw Error("config", node.where() + ": " + err);
    }
  }
}

template <class T>
Node encode_value(const T& value);

class Encoder {
 public:
  Encoder() : node_(Node::new_map()) {}
  template <class T, class C = Check<T>>
  void field(const char* key, const T& value, const char*, C = {}) {
    node_.set(key, encode_value(value));
  }
  const Node& node() const { return node_; }

 private:
  Node node_;
};

template <class T>
Node encode_value(const T& value) {
  if constexpr (std::is_same_v<T, bool>) {
    return Node::new_scalar(value ? "true" : "false");
  } else if constexpr (std::is_integral_v<T>) {
    return Node::new_scalar(std::to_string(value));
  } else if constexpr (std::is_floating_point_v<T>) {
    return Node::new_scalar(format_double(static_cast<double>(value)));
  } else if constexpr (std::is_same_v<T, std::string>) {
    return Node::new_scalar(value);
  } else if constexpr (is_optional<T>::value) {
    return value ? encode_value(*value) : Node();
  } else if constexpr (is_vector<T>::value) {
    Node seq = Node::new_sequence();
    for (const auto& v : value) seq.push_back(encode_value(v));
    return seq;
  } else if constexpr (is_string_map<T>::value) {
    Node m = Node::new_map();
    for (const auto& kv : value) m.set(kv.first, encode_value(kv.second));
    return m;
  } else {
    static_assert(is_struct<T>::value, "config field type not supported");
    Encoder e;
    const_cast<T&>(value).fields(e);  // fields() only reads through the Encoder
    return e.node();
  }
}

class Describer {
 public:
  explicit Describer(std::string prefix, std::vector<FieldDoc>* out) : prefix_(std::move(prefix)), out_(out) {}
  template <class T, class C = Check<T>>
  void field(const char* key, T& value, const char* help, C = {}) {
    const std::string path = prefix_.empty() ? std::string(key) : prefix_ + "." + key;
    if constexpr (is_struct<T>::value) {
      Describer sub(path, out_);
      value.fields(sub);
    } else {
      std::string def = encode_value(value).to_yaml();
      while (!def.empty() && (def.back() == '\n' || def.back() == ' ')) def.pop_back();
      if (def.find('\n') != std::string::npos) def = "(see YAML)";
      out_->push_back({path, type_name<T>(), def, help});
    }
  }

 private:
  std::string prefix_;
  std::vector<FieldDoc>* out_;
};

// Applies every field check (recursively) and each struct's check(); stops at the first
// problem and names its key path.
class Validator {
 public:
  explicit Validator(std::string prefix) : prefix_(std::move(prefix)) {}
  template <class T, class C = Check<T>>
  void field(const char* key, T& value, const char*, C check = {}) {
    if (!error_.empty()) return;
    const std::string path = prefix_.empty() ? std::string(key) : prefix_ + "." + key;
    if (check) {
      const std::string e = Check<T>(check)(value);
      if (!e.empty()) {
        error_ = path + ": " + e;
        return;
      }
    }
    if constexpr (is_struct<T>::value) error_ = validate_struct(value, path);
  }
  template <class T>
  static std::string validate_struct(T& value, const std::string& path) {
    Validator v(path);
    value.fields(v);
    if (!v.error_.empty()) return v.error_;
    if constexpr (has_check<T>::value) {
      const std::string e = static_cast<const T&>(value).check();
      if (!e.empty()) return path.empty() ? e : path + ": " + e;
    }
    return {};
  }

 private:
  std::string prefix_;
  std::string error_;
};

}  // namespace detail

// Checks a struct built in code the way decoding checks YAML; "" when valid, else the
// first problem with its key path.
template <class T>
std::string validate(const T& value, const std::string& path = "") {
  return detail::Validator::validate_struct(const_cast<T&>(value), path);
}

// Decodes a node (null = all defaults) into T and validates it.
template <class T>
T decode(const Node& node) {
  T value{};
  detail::decode_value(node, value);
  return value;
}

template <class T>
T parse(const std::string& yaml_text, const std::string& source,
        const std::vector<std::string>& overrides = {}) {
  Node root = Node::parse(yaml_text, source);
  for (const std::string& o : overrides) root.apply_override(o);
  return decode<T>(root);
}

template <class T>
T load(const std::string& path, const std::vector<std::string>& overrides = {}) {
  Node root = Node::load_file(path);
  for (const std::string& o : overrides) root.apply_override(o);
  return decode<T>(root);
}

// Defaults plus overrides only (no file).
template <class T>
T from_overrides(const std::vector<std::string>& overrides) {
  return parse<T>("", "<defaults>", overrides);
}

template <class T>
Node encode(const T& value) {
  return detail::encode_value(value);
}

template <class T>
std::string to_yaml(const T& value) {
  return encode(value).to_yaml();
}

template <class T>
std::vector<FieldDoc> describe() {
  T defaults{};
  std::vector<FieldDoc> out;
  detail::Describer d("", &out);
  defaults.fields(d);
  return out;
}

// Writes text to path through a temporary file and rename, so readers never see half a file.
void write_text_file(const std::string& path, const std::string& text);

// The resolved config as YAML next to an output, with a header comment.
template <class T>
void write_yaml(const T& value, const std::string& path, const std::string& header_comment = "") {
  std::string text;
  if (!header_comment.empty()) text += "# " + header_comment + "\n";
  text += to_yaml(value);
  write_text_file(path, text);
}

}  // namespace xattn::config
