// xattn::Error — the one exception type library code throws.
//
//   XATTN_CHECK(q.dim() == 4, "q: expected [B, N, H, D], got ", shape_str(q));
//   throw Error("safetensors", "file.safetensors: header length 12 exceeds file size 9");
//
// Library code never prints to stdout and never exits; only cli/ catches and picks the
// exit code. Messages say what was expected and what came, naming the field, file or tensor.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace xattn {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message), message_(message) {}
  // `where` is a short context prefix such as "config", "safetensors" or "attention".
  Error(const std::string& where, const std::string& message)
      : std::runtime_error(where + ": " + message), message_(message), where_(where) {}

  const std::string& message() const { return message_; }
  const std::string& where() const { return where_; }

  // Returns a copy with an outer context line prepended ("while loading model.safetensors").
  Error with_context(const std::string& context) const {
    Error e(context + ": " + what());
    e.context_ = context_;
    e.context_.insert(e.context_.begin(), context);
    return e;
  }

 private:
  std::string message_;
  std::string where_;
  std::vector<std::string> context_;
};

// Thrown for bad command-line usage; the CLI maps it to exit code 2.
class UsageError : public Error {
 public:
  explicit UsageError(const std::string& message) : Error(message) {}
};

// Raised when a progress callback asks to stop; the CLI maps it to exit code 1 after cleanup.
class Cancelled : public Error {
 public:
  Cancelled() : Error("cancelled") {}
};

namespace detail {
inline void append_all(std::ostringstream&) {}
template <class T, class... Rest>
void append_all(std::ostringstream& os, const T& first, const Rest&... rest) {
  os << first;
  append_all(os, rest...);
}
}  // namespace detail

// Concatenates its arguments with operator<<.
template <class... Args>
std::string str_cat(const Args&... args) {
  std::ostringstream os;
  detail::append_all(os, args...);
  return os.str();
}

}  // namespace xattn

#define XATTN_CHECK(cond, ...)                                   \
  do {                                                           \
    if (!(cond)) throw ::xattn::Error(::xattn::str_cat(__VA_ARGS__)); \
  } while (0)

#define XATTN_CHECK_IN(where, cond, ...)                                      \
  do {                                                                        \
    if (!(cond)) throw ::xattn::Error((where), ::xattn::str_cat(__VA_ARGS__)); \
  } while (0)
