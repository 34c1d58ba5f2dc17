// The subcommands of the `xattn` executable. Each takes its arguments (after the command
// name) and returns an exit code; usage errors are thrown as xattn::UsageError.
#pragma once

#include <string>
#include <vector>

namespace xattn::cli {

struct Command {
  const char* name;
  const char* summary;
  int (*run)(const std::vector<std::string>& args);
};

const std::vector<Command>& commands();

int run_info(const std::vector<std::string>& args);
int run_bench(const std::vector<std::string>& args);
#ifdef XATTN_WITH_VIDEO
int run_probe_video(const std::vector<std::string>& args);
#endif
#if defined(XATTN_WITH_TEXT) && defined(XATTN_WITH_VIDEO)
int run_generate_video(const std::vector<std::string>& args);
#endif

}  // namespace xattn::cli
