#include "cli/args.h"

#include <algorithm>
#include <charconv>
#include <sstream>

namespace xattn::cli {

std::string closest(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = std::string::npos;
  for (const std::string& c : candidates) {
    std::vector<size_t> prev(c.size() + 1), cur(c.size() + 1);
    for (size_t j = 0; j <= c.size(); ++j) prev[j] = j;
    for (size_t i = 1; i <= word.size(); ++i) {
      cur[0] = i;
      for (size_t j = 1; j <= c.size(); ++j)
        cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (word[i - 1] == c[j - 1] ? 0 : 1)});
      std::swap(prev, cur);
    }
    if (prev[c.size()] < best_d) {
      best_d = prev[c.size()];
      best = c;
    }
  }
  return best_d <= std::max<size_t>(2, word.size() / 3) ? best : std::string();
}

ArgParser::ArgParser(std::string usage, std::string description)
    : usage_(std::move(usage)), description_(std::move(description)) {}

void ArgParser::flag(const std::string& name, const std::string& value_name, const std::string& help,
                     std::string* target) {
  flags_.push_back({name, value_name, help, [target] { return *target; },
                    [target](const std::string& v) { *target = v; }});
}

void ArgParser::flag(const std::string& name, const std::string& value_name, const std::string& help, int* target) {
  flags_.push_back({name, value_name, help, [target] { return std::to_string(*target); },
                    [target, name](const std::string& v) {
                      int x = 0;
                      auto r = std::from_chars(v.data(), v.data() + v.size(), x);
                      if (v.empty() || r.ec != std::errc() || r.ptr != v.data() + v.size())
                        throw UsageError(name + ": expected an integer, got '" + v + "'");
                      *target = x;
                    }});
}

void ArgParser::flag(const std::string& name, const std::string& value_name, const std::string& help,
                     double* target) {
  flags_.push_back({name, value_name, help,
                    [target] {
                      std::ostringstream os;
                      os << *target;
                      return os.str();
                    },
                    [target, name](const std::string& v) {
                      size_t used = 0;
                      double x = 0;
                      try {
                        x = std::stod(v, &used);
                      } catch (...) {
                        used = 0;
                      }
                      if (v.empty() || used != v.size())
                        throw UsageError(name + ": expected a number, got '" + v + "'");
                      *target = x;
                    }});
}

void ArgParser::multi(const std::string& name, const std::string& value_name, const std::string& help,
                      std::vector<std::string>* target) {
  flags_.push_back({name, value_name, help, [] { return std::string(); },
                    [target](const std::string& v) { target->push_back(v); }});
}

void ArgParser::toggle(const std::string& name, const std::string& help, bool* target) {
  flags_.push_back({name, "", help, [] { return std::string(); }, [target](const std::string&) { *target = true; }});
}

void ArgParser::positional(const std::string& name, const std::string& help, std::string* target, bool required) {
  positionals_.push_back({name, help, target, required});
}

const ArgParser::Flag* ArgParser::find(const std::string& name) const {
  for (const Flag& f : flags_)
    if (f.name == name) return &f;
  return nullptr;
}

std::string ArgParser::suggest(const std::string& name) const {
  std::vector<std::string> names{"--help"};
  for (const Flag& f : flags_) names.push_back(f.name);
  const std::string c = closest(name, names);
  return c.empty() ? std::string() : " (did you mean " + c + "?)";
}

bool ArgParser::parse(const std::vector<std::string>& args) {
  for (const std::string& a : args)
    if (a == "--help" || a == "-h") return true;
  size_t next_positional = 0;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.size() > 1 && a[0] == '-' && !(a.size() > 1 && (std::isdigit(static_cast<unsigned char>(a[1])) || a[1] == '.'))) {
      std::string name = a;
      std::string value;
      bool has_value = false;
      const size_t eq = a.find('=');
      if (eq != std::string::npos) {
        name = a.substr(0, eq);
        value = a.substr(eq + 1);
        has_value = true;
      }
      const Flag* f = find(name);
      if (!f) throw UsageError("unknown flag '" + name + "'" + suggest(name) + "\nusage: " + usage_);
      if (f->value_name.empty()) {
        if (has_value) throw UsageError(name + " takes no value");
        f->apply("");
        continue;
      }
      if (!has_value) {
        if (i + 1 >= args.size()) throw UsageError(name + " needs a value " + f->value_name);
        value = args[++i];
      }
      f->apply(value);
      continue;
    }
    if (next_positional >= positionals_.size())
      throw UsageError("unexpected argument '" + a + "'\nusage: " + usage_);
    *positionals_[next_positional++].target = a;
  }
  for (size_t p = next_positional; p < positionals_.size(); ++p)
    if (positionals_[p].required) throw UsageError("missing " + positionals_[p].name + "\nusage: " + usage_);
  return false;
}

std::string ArgParser::help() const {
  std::ostringstream os;
  os << "usage: " << usage_ << "\n\n" << description_ << "\n";
  if (!positionals_.empty()) {
    os << "\narguments:\n";
    for (const auto& p : positionals_) os << "  " << p.name << "\n      " << p.help << "\n";
  }
  os << "\nflags:\n";
  for (const Flag& f : flags_) {
    os << "  " << f.name;
    if (!f.value_name.empty()) os << " " << f.value_name;
    os << "\n      " << f.help;
    const std::string d = f.show_default();
    if (!f.value_name.empty() && !d.empty()) os << " (default: " << d << ")";
    os << "\n";
  }
  os << "  -h, --help\n      show this help\n";
  if (!epilog_.empty()) os << "\n" << epilog_ << "\n";
  return os.str();
}

}  // namespace xattn::cli
