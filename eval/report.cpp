#include "eval/report.h"

#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"

namespace xattn::eval {

std::string fmt(double value, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, value);
  return buf;
}

std::string Table::render(const std::string& format) const {
  std::ostringstream os;
  if (format == "md") {
    os << "|";
    for (const auto& c : columns) os << " " << c << " |";
    os << "\n|";
    for (size_t i = 0; i < columns.size(); ++i) os << (numeric[i] ? "---:|" : "---|");
    os << "\n";
    for (const auto& r : rows) {
      os << "|";
      for (const auto& cell : r) os << " " << cell << " |";
      os << "\n";
    }
  } else if (format == "csv") {
    auto quote = [](const std::string& s) {
      if (s.find_first_of(",\"\n") == std::string::npos) return s;
      std::string q = "\"";
      for (char ch : s) q += (ch == '"') ? std::string("\"\"") : std::string(1, ch);
      return q + "\"";
    };
    for (size_t i = 0; i < columns.size(); ++i) os << (i ? "," : "") << quote(columns[i]);
    os << "\n";
    for (const auto& r : rows) {
      for (size_t i = 0; i < r.size(); ++i) os << (i ? "," : "") << quote(r[i]);
      os << "\n";
    }
  } else if (format == "json") {
    nlohmann::ordered_json arr = nlohmann::ordered_json::array();
    for (const auto& r : rows) {
      nlohmann::ordered_json o;
      for (size_t i = 0; i < columns.size() && i < r.size(); ++i) {
        if (numeric[i]) {
          try {
            o[columns[i]] = std::stod(r[i]);
          } catch (...) {
            o[columns[i]] = r[i];
          }
        } else {
          o[columns[i]] = r[i];
        }
      }
      arr.push_back(o);
    }
    os << arr.dump(2) << "\n";
  } else {
    throw Error("report", "unknown output format '" + format + "' (expected md, csv or json)");
  }
  return os.str();
}

}  // namespace xattn::eval
