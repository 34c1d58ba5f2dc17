// yaml-cpp lives here and in the other core/config/*.cpp files only.
#include "core/config/node.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include "core/error.h"

namespace xattn::config {

namespace {
// State shared by all nodes of one document: its name and the --set overrides applied.
struct Doc {
  std::string source;
  std::vector<std::string> override_paths;   // "a.b"
  std::vector<std::string> override_texts;   // "a.b=value"
};

[[noreturn]] void fail(const std::string& msg) { throw Error("config", msg); }

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}
}  // namespace

struct Node::Impl {
  YAML::Node node;
  std::string path;
  std::shared_ptr<Doc> doc;
};

Node::Node() : impl_(std::make_shared<Impl>()) {
  impl_->node = YAML::Node(YAML::NodeType::Null);
  impl_->doc = std::make_shared<Doc>();
}
Node::Node(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
Node::~Node() = default;
Node::Node(const Node&) = default;
Node& Node::operator=(const Node&) = default;

Node Node::parse(const std::string& text, const std::string& source) {
  auto impl = std::make_shared<Impl>();
  impl->doc = std::make_shared<Doc>();
  impl->doc->source = source;
  try {
    impl->node = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    fail(source + " line " + std::to_string(e.mark.line + 1) + ": invalid YAML: " + e.msg);
  }
  if (!impl->node.IsDefined()) impl->node = YAML::Node(YAML::NodeType::Null);
  return Node(impl);
}

Node Node::load_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path + ": cannot open config file");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse(ss.str(), path);
}

Node Node::new_map() {
  Node n;
  n.impl_->node = YAML::Node(YAML::NodeType::Map);
  return n;
}
Node Node::new_sequence() {
  Node n;
  n.impl_->node = YAML::Node(YAML::NodeType::Sequence);
  return n;
}
Node Node::new_scalar(const std::string& value) {
  Node n;
  n.impl_->node = YAML::Node(value);
  return n;
}

Node::Kind Node::kind() const {
  switch (impl_->node.Type()) {
    case YAML::NodeType::Scalar: return Kind::kScalar;
    case YAML::NodeType::Sequence: return Kind::kSequence;
    case YAML::NodeType::Map: return Kind::kMap;
    default: return Kind::kNull;
  }
}

const std::string& Node::path() const { return impl_->path; }
const std::string& Node::source() const { return impl_->doc->source; }

int Node::line() const {
  const YAML::Mark m = impl_->node.Mark();
  return m.is_null() ? 0 : m.line + 1;
}

std::string Node::where() const {
  const std::string name = impl_->path.empty() ? std::string("<root>") : impl_->path;
  const Doc& d = *impl_->doc;
  for (size_t i = 0; i < d.override_paths.size(); ++i) {
    const std::string& p = d.override_paths[i];
    if (impl_->path == p || impl_->path.rfind(p + ".", 0) == 0 || impl_->path.rfind(p + "[", 0) == 0)
      return name + " (from --set " + d.override_texts[i] + ")";
  }
  std::string loc = d.source.empty() ? std::string() : d.source;
  const int l = line();
  if (l > 0) loc += (loc.empty() ? "line " : " line ") + std::to_string(l);
  return loc.empty() ? name : name + " (" + loc + ")";
}

std::vector<std::string> Node::keys() const {
  if (!is_map()) fail(where() + ": expected a map");
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (auto it = impl_->node.begin(); it != impl_->node.end(); ++it) {
    if (!it->first.IsScalar()) fail(where() + ": map keys must be plain strings");
    std::string k = it->first.Scalar();
    if (!seen.insert(k).second) {
      const int l = it->first.Mark().is_null() ? 0 : it->first.Mark().line + 1;
      fail(where() + ": duplicate key '" + k + "'" + (l > 0 ? " at line " + std::to_string(l) : ""));
    }
    out.push_back(std::move(k));
  }
  return out;
}

bool Node::has(const std::string& key) const {
  if (!is_map()) return false;
  const YAML::Node& n = impl_->node;
  for (auto it = n.begin(); it != n.end(); ++it)
    if (it->first.IsScalar() && it->first.Scalar() == key) return true;
  return false;
}

Node Node::get(const std::string& key) const {
  if (!is_map()) fail(where() + ": expected a map with key '" + key + "'");
  const YAML::Node& n = impl_->node;
  for (auto it = n.begin(); it != n.end(); ++it) {
    if (it->first.IsScalar() && it->first.Scalar() == key) {
      auto impl = std::make_shared<Impl>();
      impl->node = it->second;
      impl->path = impl_->path.empty() ? key : impl_->path + "." + key;
      impl->doc = impl_->doc;
      return Node(impl);
    }
  }
  fail(where() + ": missing key '" + key + "'");
}

void Node::set(const std::string& key, const Node& value) {
  if (is_null()) impl_->node = YAML::Node(YAML::NodeType::Map);
  if (!is_map()) fail(where() + ": cannot set key '" + key + "' on a non-map");
  impl_->node[key] = value.impl_->node;
}

size_t Node::size() const {
  if (!is_sequence()) fail(where() + ": expected a list");
  return impl_->node.size();
}

Node Node::at(size_t i) const {
  if (!is_sequence()) fail(where() + ": expected a list");
  if (i >= impl_->node.size()) fail(where() + ": index " + std::to_string(i) + " out of range");
  auto impl = std::make_shared<Impl>();
  impl->node = impl_->node[i];
  impl->path = impl_->path + "[" + std::to_string(i) + "]";
  impl->doc = impl_->doc;
  return Node(impl);
}

void Node::push_back(const Node& value) {
  if (is_null()) impl_->node = YAML::Node(YAML::NodeType::Sequence);
  if (!is_sequence()) fail(where() + ": cannot append to a non-list");
  impl_->node.push_back(value.impl_->node);
}

std::string Node::scalar() const {
  switch (kind()) {
    case Kind::kScalar: return impl_->node.Scalar();
    case Kind::kNull: return "null";
    case Kind::kSequence: return "a list";
    case Kind::kMap: return "a map";
  }
  return "?";
}

std::string Node::as_string() const {
  if (!is_scalar()) fail(where() + ": expected a string, got " + scalar());
  return impl_->node.Scalar();
}

int64_t Node::as_int() const {
  if (!is_scalar()) fail(where() + ": expected an integer, got " + scalar());
  const std::string& s = impl_->node.Scalar();
  int64_t v = 0;
  const char* b = s.data();
  const char* e = s.data() + s.size();
  if (b != e && *b == '+') ++b;
  auto r = std::from_chars(b, e, v);
  if (b == e || r.ec != std::errc() || r.ptr != e) {
    if (r.ec == std::errc::result_out_of_range)
      fail(where() + ": integer '" + s + "' is out of range");
    fail(where() + ": expected an integer, got '" + s + "'");
  }
  return v;
}

double Node::as_double() const {
  if (!is_scalar()) fail(where() + ": expected a number, got " + scalar());
  const std::string& s = impl_->node.Scalar();
  const std::string l = lower(s);
  if (l == ".inf" || l == "+.inf" || l == "inf") return std::numeric_limits<double>::infinity();
  if (l == "-.inf" || l == "-inf") return -std::numeric_limits<double>::infinity();
  double v = 0;
  const char* b = s.data();
  const char* e = s.data() + s.size();
  if (b != e && *b == '+') ++b;
  auto r = std::from_chars(b, e, v);
  if (b == e || r.ec != std::errc() || r.ptr != e || std::isnan(v))
    fail(where() + ": expected a number, got '" + s + "'");
  return v;
}

bool Node::as_bool() const {
  if (!is_scalar()) fail(where() + ": expected true or false, got " + scalar());
  const std::string l = lower(impl_->node.Scalar());
  if (l == "true" || l == "yes" || l == "on") return true;
  if (l == "false" || l == "no" || l == "off") return false;
  fail(where() + ": expected true or false, got '" + impl_->node.Scalar() + "'");
}

void Node::apply_override(const std::string& assignment) {
  const size_t eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    fail("--set " + assignment + ": expected KEY=VALUE, e.g. --set attention.threshold=0.95");
  const std::string key_path = assignment.substr(0, eq);
  const std::string value_text = assignment.substr(eq + 1);
  std::vector<std::string> parts;
  {
    std::stringstream ss(key_path);
    std::string part;
    while (std::getline(ss, part, '.')) {
      if (part.empty()) fail("--set " + assignment + ": empty component in key '" + key_path + "'");
      parts.push_back(part);
    }
  }
  YAML::Node value;
  try {
    value = value_text.empty() ? YAML::Node(YAML::NodeType::Null) : YAML::Load(value_text);
  } catch (const YAML::Exception& e) {
    fail("--set " + assignment + ": value is not valid YAML: " + e.msg);
  }
  if (is_null()) impl_->node = YAML::Node(YAML::NodeType::Map);
  // yaml-cpp nodes are references: walk down creating maps as needed.
  YAML::Node cur = impl_->node;
  std::string walked;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    walked += (walked.empty() ? "" : ".") + parts[i];
    if (!cur.IsMap()) fail("--set " + assignment + ": '" + walked + "' is not a map");
    YAML::Node next = cur[parts[i]];
    if (!next.IsDefined() || next.IsNull()) {
      cur[parts[i]] = YAML::Node(YAML::NodeType::Map);
      next = cur[parts[i]];
    }
    cur.reset(next);
  }
  if (!cur.IsMap()) fail("--set " + assignment + ": '" + walked + "' is not a map");
  cur[parts.back()] = value;
  std::string full = impl_->path;
  full += (full.empty() ? "" : ".") + key_path;
  impl_->doc->override_paths.push_back(full);
  impl_->doc->override_texts.push_back(assignment);
}

std::string Node::to_yaml() const {
  YAML::Emitter out;
  out << impl_->node;
  std::string s = out.c_str();
  if (!s.empty() && s.back() != '\n') s += '\n';
  return s;
}

}  // namespace xattn::config
