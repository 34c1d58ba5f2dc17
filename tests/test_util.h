// Helpers shared by the test suites.
#pragma once

#include <functional>
#include <string>

#include "core/error.h"

namespace xattn::testing {

// The message of the xattn::Error that f throws, or "<no error>".
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const xattn::Error& e) {
    return e.what();
  }
  return "<no error>";
}

}  // namespace xattn::testing
