// xattn — the command-line front end. It only parses arguments, builds configs and calls
// the library; it alone picks exit codes: 0 ok, 1 runtime failure, 2 usage error.
#include <iostream>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/build_info.h"
#include "core/error.h"
#include "core/log.h"

namespace {

std::string top_help() {
  std::string s =
      "usage: xattn [--log-level LEVEL] [--version] <command> [flags]\n\n"
      "xattn runs video diffusion and video-language models with XAttention, block-sparse\n"
      "attention whose blocks are chosen by antidiagonal scores.\n\ncommands:\n";
  for (const auto& c : xattn::cli::commands()) {
    std::string name = c.name;
    name.resize(16, ' ');
    s += "  " + name + c.summary + "\n";
  }
  s +=
      "\nglobal flags:\n"
      "  --log-level LEVEL   debug, info, warn, error or off (default: info); logs go to stderr\n"
      "  --version           print the version and compiled features\n"
      "  -h, --help          show this help; `xattn <command> --help` for a command's flags\n"
      "\nexit codes: 0 success, 1 runtime failure, 2 usage error\n";
  return s;
}

int dispatch(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  size_t i = 0;
  while (i < args.size() && !args[i].empty() && args[i][0] == '-') {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      std::cout << top_help();
      return 0;
    }
    if (a == "--version") {
      const auto& b = xattn::build_info();
      std::string f;
      for (const auto& s : b.features()) f += (f.empty() ? "" : ", ") + s;
      std::cout << "xattn " << b.version << " (git " << b.git_sha << "; LibTorch " << b.torch_version << "; " << f
                << ")\n";
      return 0;
    }
    if (a == "--log-level" || a.rfind("--log-level=", 0) == 0) {
      std::string v;
      if (a == "--log-level") {
        if (i + 1 >= args.size()) throw xattn::UsageError("--log-level needs a value");
        v = args[++i];
      } else {
        v = a.substr(12);
      }
      try {
        xattn::log::set_level(xattn::log::parse_level(v));
      } catch (const xattn::Error& e) {
        throw xattn::UsageError(e.message());
      }
      ++i;
      continue;
    }
    throw xattn::UsageError("unknown global flag '" + a + "'\n\n" + top_help());
  }
  if (i >= args.size()) throw xattn::UsageError("no command given\n\n" + top_help());
  const std::string name = args[i];
  std::vector<std::string> rest(args.begin() + static_cast<long>(i) + 1, args.end());
  std::vector<std::string> names;
  for (const auto& c : xattn::cli::commands()) {
    if (name == c.name) return c.run(rest);
    names.emplace_back(c.name);
  }
  const std::string near = xattn::cli::closest(name, names);
  throw xattn::UsageError("unknown command '" + name + "'" + (near.empty() ? "" : " (did you mean " + near + "?)") +
                          "; run `xattn --help` for the list");
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return dispatch(argc, argv);
  } catch (const xattn::UsageError& e) {
    std::cerr << "xattn: " << e.what() << "\n";
    return 2;
  } catch (const xattn::Cancelled&) {
    std::cerr << "xattn: cancelled\n";
    return 1;
  } catch (const xattn::Error& e) {
    std::cerr << "xattn: error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "xattn: internal error: " << e.what() << "\n";
    return 1;
  }
}
