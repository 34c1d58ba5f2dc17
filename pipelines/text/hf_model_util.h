// Helpers shared by the Hugging Face model readers in pipelines/: config.json fields with the file
// and field named in every error, checkpoint prefixes, and seeded random weights.
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/safetensors/safetensors.h"

namespace xattn::text {

std::string read_text_file(const std::string& path);

// Reads config.json fields. When the file nests the text model under "text_config" (transformers 5
// writes Qwen2-VL so), fields are looked up there first, then at the top level.
class HfConfigReader {
 public:
  HfConfigReader(const std::string& json_text, const std::string& origin);
  int64_t integer(const std::string& key) const;  // required
  int64_t integer(const std::string& key, int64_t fallback) const;
  double number(const std::string& key, double fallback) const;
  bool boolean(const std::string& key, bool fallback) const;
  std::string str(const std::string& key, const std::string& fallback) const;
  std::vector<int64_t> int_list(const std::string& key) const;  // an int or a list; empty when absent
  nlohmann::json object(const std::string& key) const;          // null when absent or null
  [[noreturn]] void fail(const std::string& key, const std::string& what) const;

 private:
  const nlohmann::json* find(const std::string& key) const;
  nlohmann::json root_;
  nlohmann::json text_;
  std::string origin_;
};

// A model folder's config.json path, after checking that the folder, the config and some
// safetensors weights are there (throws naming what is missing).
std::string model_config_path(const std::string& dir);

// The checkpoint in a model folder (model.safetensors, an index with shards, or any *.safetensors).
safetensors::Checkpoint open_checkpoint(const std::string& dir);

// Copies the checkpoint into the parameters; tensors no parameter takes are ignored (a vision
// tower, buffers); a missing or misshaped one throws with its key, both shapes and `what`.
// With dry_run, only names and shapes are checked (params may be meta tensors).
void load_parameters(const safetensors::Checkpoint& ckpt, const std::map<std::string, at::Tensor>& params,
                     const std::string& what, bool dry_run = false);

// The first prefix p for which the checkpoint has p + probe; throws naming the folder otherwise.
std::string find_prefix(const safetensors::Checkpoint& ckpt, const std::vector<std::string>& prefixes,
                        const std::string& probe, const std::string& dir);

// Seeded random weights for benchmarks and tests: normal(0, 0.02) for matrices and embeddings,
// 1 for norm weights and 0 for norm biases; generated on each tensor's device (the device's
// default generator is re-seeded per tensor and its state restored afterwards).
void fill_random(const std::map<std::string, at::Tensor>& params, uint64_t seed);

}  // namespace xattn::text
