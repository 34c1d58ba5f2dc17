// Command-line flags as a table: each flag is one entry with its help and its default
// (the current value of the variable it writes, so defaults live in one place).
//
//   ArgParser p("xattn info [flags]", "Show what this build can do.");
//   bool json = false;
//   p.toggle("--json", "print JSON instead of text", &json);
//   if (p.parse(args)) { std::cout << p.help(); return 0; }   // --help was given
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/error.h"

namespace xattn::cli {

class ArgParser {
 public:
  ArgParser(std::string usage, std::string description);

  void flag(const std::string& name, const std::string& value_name, const std::string& help, std::string* target);
  void flag(const std::string& name, const std::string& value_name, const std::string& help, int* target);
  void flag(const std::string& name, const std::string& value_name, const std::string& help, double* target);
  // Repeatable flag collecting every value (e.g. --set a=b --set c=d).
  void multi(const std::string& name, const std::string& value_name, const std::string& help,
             std::vector<std::string>* target);
  void toggle(const std::string& name, const std::string& help, bool* target);
  void positional(const std::string& name, const std::string& help, std::string* target, bool required = true);
  // Free text printed after the flag table (examples, notes).
  void epilog(const std::string& text) { epilog_ = text; }

  // Parses arguments (without the program/command names). Returns true when --help/-h was
  // given (nothing else is validated then). Throws xattn::UsageError on bad usage.
  bool parse(const std::vector<std::string>& args);
  std::string help() const;

 private:
  struct Flag {
    std::string name;
    std::string value_name;  // empty for toggles
    std::string help;
    std::function<std::string()> show_default;
    std::function<void(const std::string&)> apply;
  };
  struct Positional {
    std::string name;
    std::string help;
    std::string* target;
    bool required;
  };
  const Flag* find(const std::string& name) const;
  std::string suggest(const std::string& name) const;

  std::string usage_;
  std::string description_;
  std::string epilog_;
  std::vector<Flag> flags_;
  std::vector<Positional> positionals_;
};

// The closest candidate by edit distance, or "" when none is close.
std::string closest(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace xattn::cli
