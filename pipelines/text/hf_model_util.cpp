#include "pipelines/text/hf_model_util.h"

#include <ATen/Context.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace xattn::text {

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("model", path + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

HfConfigReader::HfConfigReader(const std::string& json_text, const std::string& origin) : origin_(origin) {
  try {
    root_ = nlohmann::json::parse(json_text);
  } catch (const std::exception& e) {
    throw Error("model", origin + ": not valid JSON: " + e.what());
  }
  if (!root_.is_object()) throw Error("model", origin + ": expected a JSON object");
  if (root_.contains("text_config") && root_["text_config"].is_object()) text_ = root_["text_config"];
}

const nlohmann::json* HfConfigReader::find(const std::string& key) const {
  if (text_.is_object() && text_.contains(key) && !text_[key].is_null()) return &text_[key];
  if (root_.contains(key) && !root_[key].is_null()) return &root_[key];
  return nullptr;
}

void HfConfigReader::fail(const std::string& key, const std::string& what) const {
  throw Error("model", origin_ + ": " + key + ": " + what);
}

int64_t HfConfigReader::integer(const std::string& key) const {
  const nlohmann::json* v = find(key);
  if (!v) fail(key, "missing");
  if (!v->is_number_integer()) fail(key, "expected an integer, got " + v->dump());
  return v->get<int64_t>();
}

int64_t HfConfigReader::integer(const std::string& key, int64_t fallback) const {
  return find(key) ? integer(key) : fallback;
}

double HfConfigReader::number(const std::string& key, double fallback) const {
  const nlohmann::json* v = find(key);
  if (!v) return fallback;
  if (!v->is_number()) fail(key, "expected a number, got " + v->dump());
  return v->get<double>();
}

bool HfConfigReader::boolean(const std::string& key, bool fallback) const {
  const nlohmann::json* v = find(key);
  if (!v) return fallback;
  if (!v->is_boolean()) fail(key, "expected true or false, got " + v->dump());
  return v->get<bool>();
}

std::string HfConfigReader::str(const std::string& key, const std::string& fallback) const {
  const nlohmann::json* v = find(key);
  if (!v) return fallback;
  if (!v->is_string()) fail(key, "expected a string, got " + v->dump());
  return v->get<std::string>();
}

std::vector<int64_t> HfConfigReader::int_list(const std::string& key) const {
  const nlohmann::json* v = find(key);
  if (!v) return {};
  if (v->is_number_integer()) return {v->get<int64_t>()};
  if (v->is_array()) {
    std::vector<int64_t> out;
    for (const auto& x : *v) {
      if (!x.is_number_integer()) fail(key, "expected integers, got " + v->dump());
      out.push_back(x.get<int64_t>());
    }
    return out;
  }
  fail(key, "expected an integer or a list, got " + v->dump());
}

nlohmann::json HfConfigReader::object(const std::string& key) const {
  const nlohmann::json* v = find(key);
  if (!v) return nullptr;
  if (!v->is_object()) fail(key, "expected an object, got " + v->dump());
  return *v;
}

std::string model_config_path(const std::string& dir) {
  namespace fs = std::filesystem;
  const fs::path d(dir);
  if (!fs::is_directory(d)) throw Error("model", dir + ": not a directory (expected config.json and safetensors)");
  if (!fs::exists(d / "config.json")) throw Error("model", dir + ": no config.json");
  return (d / "config.json").string();
}

void load_parameters(const safetensors::Checkpoint& ckpt, const std::map<std::string, at::Tensor>& params,
                     const std::string& what, bool dry_run) {
  safetensors::LoadOptions lo;
  lo.allow_unexpected = true;
  lo.dry_run = dry_run;
  try {
    safetensors::load_into(ckpt, params, lo);
  } catch (const Error& e) {
    throw e.with_context("loading " + what + " from " + ckpt.path());
  }
}

safetensors::Checkpoint open_checkpoint(const std::string& dir) {
  namespace fs = std::filesystem;
  bool any = false;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".safetensors" || e.path().filename() == "model.safetensors.index.json") any = true;
  if (!any) throw Error("model", dir + ": no safetensors weights (model.safetensors or an index with shards)");
  return safetensors::Checkpoint::open(dir);
}

std::string find_prefix(const safetensors::Checkpoint& ckpt, const std::vector<std::string>& prefixes,
                        const std::string& probe, const std::string& dir) {
  std::string tried;
  for (const std::string& p : prefixes) {
    if (ckpt.contains(p + probe)) return p;
    tried += (tried.empty() ? "'" : ", '") + p + probe + "'";
  }
  throw Error("model", dir + ": the checkpoint has none of " + tried + " (is this the right model folder?)");
}

void fill_random(const std::map<std::string, at::Tensor>& params, uint64_t seed) {
  uint64_t i = 0;
  for (const auto& kv : params) {
    const std::string& name = kv.first;
    at::Tensor t = kv.second;
    const bool norm = name.find("norm") != std::string::npos;
    const bool bias = name.size() >= 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
    if (norm) {
      bias ? t.zero_() : t.fill_(1.0);
      continue;
    }
    at::Generator gen = at::globalContext().defaultGenerator(t.device());
    const at::Tensor state = gen.get_state();
    gen.set_current_seed(seed * 1000003u + i++);
    t.normal_(0.0, 0.02, gen);
    gen.set_state(state);
  }
}

}  // namespace xattn::text
