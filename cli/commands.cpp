#include "cli/commands.h"

namespace xattn::cli {

const std::vector<Command>& commands() {
  static const std::vector<Command> table = {
      {"info", "show version, LibTorch, CUDA devices and compiled features", run_info},
      {"bench", "benchmarks and studies (proxy: block-score estimators at equal density)", run_bench},
  };
  return table;
}

}  // namespace xattn::cli
