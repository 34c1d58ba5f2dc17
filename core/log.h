// Levelled logging to stderr (or a sink the application installs).
//
//   xattn::log::set_level(xattn::log::Level::kDebug);
//   XATTN_LOG_INFO("loaded ", n, " tensors from ", path);
#pragma once

#include <functional>
#include <string>

#include "core/error.h"

namespace xattn::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };

// Parses "debug", "info", "warn"/"warning", "error", "off"; throws Error otherwise.
Level parse_level(const std::string& text);
const char* level_name(Level level);

void set_level(Level level);
Level level();
inline bool enabled(Level l) { return l >= level() && l != Level::kOff; }

// The sink receives complete lines without a trailing newline. Default: stderr with a
// "[xattn LEVEL]" prefix. Passing an empty function restores the default.
using Sink = std::function<void(Level, const std::string&)>;
void set_sink(Sink sink);

void write(Level level, const std::string& message);

}  // namespace xattn::log

#define XATTN_LOG_AT(lvl, ...)                                                   \
  do {                                                                           \
    if (::xattn::log::enabled(lvl)) ::xattn::log::write(lvl, ::xattn::str_cat(__VA_ARGS__)); \
  } while (0)
#define XATTN_LOG_DEBUG(...) XATTN_LOG_AT(::xattn::log::Level::kDebug, __VA_ARGS__)
#define XATTN_LOG_INFO(...) XATTN_LOG_AT(::xattn::log::Level::kInfo, __VA_ARGS__)
#define XATTN_LOG_WARN(...) XATTN_LOG_AT(::xattn::log::Level::kWarn, __VA_ARGS__)
#define XATTN_LOG_ERROR(...) XATTN_LOG_AT(::xattn::log::Level::kError, __VA_ARGS__)
