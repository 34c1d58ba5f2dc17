// A YAML document node with its key path and source line, without exposing yaml-cpp.
// Used by core/config/config.h to decode typed config structs; yaml-cpp stays inside
// core/config/*.cpp.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace xattn::config {

class Node {
 public:
  enum class Kind { kNull, kScalar, kSequence, kMap };

  Node();  // a null node with an empty path
  ~Node();
  Node(const Node&);
  Node& operator=(const Node&);

  // Parses YAML text; `source` names the document in errors (a file path or "--set a=b").
  static Node parse(const std::string& text, const std::string& source);
  static Node load_file(const std::string& path);
  static Node new_map();
  static Node new_sequence();
  static Node new_scalar(const std::string& value);

  Kind kind() const;
  bool is_null() const { return kind() == Kind::kNull; }
  bool is_map() const { return kind() == Kind::kMap; }
  bool is_sequence() const { return kind() == Kind::kSequence; }
  bool is_scalar() const { return kind() == Kind::kScalar; }

  // "attention.layers[3].threshold"; empty for the root.
  const std::string& path() const;
  // 1-based line in the source, or 0 when unknown (e.g. a node built in code).
  int line() const;
  const std::string& source() const;
  // "attention.stride (configs/a.yaml line 4)" — used at the start of error messages.
  std::string where() const;

  // Map access.
  std::vector<std::string> keys() const;   // in document order
  bool has(const std::string& key) const;
  Node get(const std::string& key) const;  // throws if absent
  void set(const std::string& key, const Node& value);

  // Sequence access.
  size_t size() const;
  Node at(size_t i) const;
  void push_back(const Node& value);

  // Scalars. Each throws xattn::Error naming where() on a wrong type.
  std::string as_string() const;
  int64_t as_int() const;
  double as_double() const;
  bool as_bool() const;
  // Raw scalar text (for error messages).
  std::string scalar() const;

  // Applies an override "a.b.c=value" (value is parsed as YAML, so lists work).
  // Intermediate maps are created as needed.
  void apply_override(const std::string& assignment);

  std::string to_yaml() const;

 private:
  struct Impl;
  explicit Node(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace xattn::config
