// Result tables for benchmarks and evaluations: one list of columns and rows, printed as
// Markdown, CSV or JSON (llama-bench style -o md|csv|json).
#pragma once

#include <string>
#include <vector>

namespace xattn::eval {

struct Table {
  std::vector<std::string> columns;
  std::vector<std::vector<std::string>> rows;  // cells already formatted
  // Which columns hold numbers (emitted unquoted in JSON).
  std::vector<bool> numeric;

  void add_column(const std::string& name, bool is_numeric) {
    columns.push_back(name);
    numeric.push_back(is_numeric);
  }
  std::string render(const std::string& format) const;  // "md", "csv" or "json"; throws otherwise
};

std::string fmt(double value, int decimals);

}  // namespace xattn::eval
