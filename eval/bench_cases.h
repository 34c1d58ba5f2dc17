// The shapes every GPU attention benchmark uses (issues 4 and 5): causal 8K-128K with GQA
// (32 query / 8 key-value heads) and the 720p x 129-frame HunyuanVideo attention.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace xattn::eval {

struct BenchCase {
  std::string name;
  int64_t len, q_heads, kv_heads;
  bool causal;
};

const std::vector<BenchCase>& bench_cases();
// Throws xattn::Error for an unknown name.
const BenchCase& bench_case(const std::string& name);
std::vector<std::string> bench_case_names();

}  // namespace xattn::eval
