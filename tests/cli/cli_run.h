// Runs the real `xattn` binary (XATTN_BIN) and captures stdout, stdout+stderr and the exit code.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace {  // NOLINT: each test file gets its own copy
struct Result {
  int code;
  std::string out;  // stdout
  std::string all;  // stdout + stderr
};
Result run(const std::string& args) {
  Result r;
  auto capture = [](const std::string& cmd, int* code) {
    std::string out;
    FILE* p = popen(cmd.c_str(), "r");
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
    const int status = pclose(p);
    *code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return out;
  };
  int c2 = 0;
  r.out = capture(std::string(XATTN_BIN) + " " + args + " 2>/dev/null", &r.code);
  r.all = capture(std::string(XATTN_BIN) + " " + args + " 2>&1", &c2);
  EXPECT_EQ(r.code, c2);
  return r;
}
}  // namespace
