// Shared helpers for the text-model parity tests: fixture paths (made by
// tests/fixtures/make_model_fixtures.py with transformers on the GPU host) and relative error.
#pragma once

#include <ATen/ATen.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "core/safetensors/safetensors.h"

namespace xattn::test {

inline std::string model_fixture(const std::string& name) {
  return std::string(XATTN_SOURCE_DIR) + "/tests/fixtures/models/" + name;
}

inline std::map<std::string, at::Tensor> expected_tensors(const std::string& name) {
  return safetensors::load(model_fixture(name) + "/expected.safetensors");
}

inline nlohmann::json expected_facts(const std::string& name) {
  std::ifstream in(model_fixture(name) + "/expected.json");
  return nlohmann::json::parse(in);
}

// max |a - b| / max |b|: the fp32 parity measure (acceptance: <= 1e-4).
inline double rel_err(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor x = a.to(at::kDouble).cpu(), y = b.to(at::kDouble).cpu();
  if (x.sizes() != y.sizes()) return 1e30;
  return (x - y).abs().max().item<double>() / std::max(y.abs().max().item<double>(), 1e-30);
}

}  // namespace xattn::test
