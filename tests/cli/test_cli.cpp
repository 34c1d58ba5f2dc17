// Runs the real `xattn` binary and checks output and exit codes.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "cli_run.h"


TEST(Cli, HelpListsCommandsAndExitCodes) {
  const Result r = run("--help");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("info"), std::string::npos);
  EXPECT_NE(r.out.find("exit codes"), std::string::npos);
  EXPECT_EQ(run("info --help").code, 0);
  EXPECT_NE(run("info --help").out.find("--json"), std::string::npos);
}

TEST(Cli, VersionAndInfo) {
  const Result v = run("--version");
  EXPECT_EQ(v.code, 0);
  EXPECT_EQ(v.out.rfind("xattn 0.", 0), 0u) << v.out;
  const Result i = run("info");
  EXPECT_EQ(i.code, 0);
  EXPECT_NE(i.out.find("LibTorch"), std::string::npos);
  EXPECT_NE(i.out.find("features"), std::string::npos);
}

TEST(Cli, InfoJsonIsValidJson) {
  const Result r = run("info --json");
  ASSERT_EQ(r.code, 0);
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_TRUE(j.contains("version"));
  EXPECT_TRUE(j["libtorch"].contains("version"));
  EXPECT_TRUE(j["cuda_devices"].is_array());
}

TEST(Cli, UsageErrorsExitTwoWithAMessage) {
  const Result a = run("info --jsn");
  EXPECT_EQ(a.code, 2);
  EXPECT_NE(a.all.find("unknown flag '--jsn' (did you mean --json?)"), std::string::npos) << a.all;
  const Result b = run("inf");
  EXPECT_EQ(b.code, 2);
  EXPECT_NE(b.all.find("unknown command 'inf' (did you mean info?)"), std::string::npos) << b.all;
  const Result c = run("");
  EXPECT_EQ(c.code, 2);
  EXPECT_NE(c.all.find("no command given"), std::string::npos);
  const Result d = run("--log-level loud info");
  EXPECT_EQ(d.code, 2);
  EXPECT_NE(d.all.find("unknown log level 'loud'"), std::string::npos);
  const Result e = run("--frobnicate");
  EXPECT_EQ(e.code, 2);
}

// The proxy study runs end to end and its table says something true about the estimators.
TEST(Cli, BenchProxyJsonRanksAntidiagonalAboveRandomOnVideo) {
  const Result r = run("bench proxy -o json");
  ASSERT_EQ(r.code, 0) << r.all;
  const auto rows = nlohmann::json::parse(r.out);
  ASSERT_EQ(rows.size(), 15u);
  double anti = -1, rnd = -1;
  for (const auto& row : rows) {
    if (row["workload"].get<std::string>().rfind("video", 0) != 0) continue;
    if (row["method"] == "antidiagonal") anti = row["mass recall"].get<double>();
    if (row["method"] == "random") rnd = row["mass recall"].get<double>();
  }
  EXPECT_GT(anti, rnd + 0.1);
  EXPECT_EQ(run("bench proxy -o xml").code, 2);
  EXPECT_EQ(run("bench nosuch").code, 2);
}
