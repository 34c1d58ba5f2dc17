#include "eval/bench_cases.h"

#include "core/error.h"

namespace xattn::eval {

const std::vector<BenchCase>& bench_cases() {
  static const std::vector<BenchCase> cases = {
      {"causal-8k", 8192, 32, 8, true},    {"causal-16k", 16384, 32, 8, true},
      {"causal-32k", 32768, 32, 8, true},  {"causal-64k", 65536, 32, 8, true},
      {"causal-128k", 131072, 32, 8, true}, {"video-720p", 118800 + 256, 24, 24, false},
      // Non-causal at the lengths issue 5's dense target names (N >= 16K), video-like heads.
      {"full-16k", 16384, 24, 24, false},  {"full-32k", 32768, 24, 24, false},
      {"full-64k", 65536, 24, 24, false},
  };
  return cases;
}

const BenchCase& bench_case(const std::string& name) {
  for (const auto& c : bench_cases())
    if (c.name == name) return c;
  throw Error("bench", "unknown case '" + name + "'");
}

std::vector<std::string> bench_case_names() {
  std::vector<std::string> n;
  for (const auto& c : bench_cases()) n.push_back(c.name);
  return n;
}

}  // namespace xattn::eval
