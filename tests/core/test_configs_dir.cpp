// Every file under configs/ loads and validates as the struct its folder names.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <map>

#include "core/attention/xattention.h"
#include "core/config/config.h"
#include "eval/density.h"

namespace fs = std::filesystem;

TEST(ConfigsDir, EveryFileLoadsAndValidates) {
  const std::map<std::string, std::function<void(const std::string&)>> loaders = {
      {"attention", [](const std::string& p) { xattn::config::load<xattn::attention::AttentionSpec>(p); }},
      {"density", [](const std::string& p) { xattn::config::load<xattn::eval::DensityBench>(p); }},
      {"policy", [](const std::string&) {}},  // AttentionPolicy: tests/pipelines/test_policy.cpp loads these
  };
  const fs::path root = fs::path(XATTN_SOURCE_DIR) / "configs";
  int files = 0;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (!e.is_regular_file() || e.path().extension() != ".yaml") continue;
    const std::string kind = e.path().parent_path().filename().string();
    auto it = loaders.find(kind);
    ASSERT_NE(it, loaders.end()) << "no config type registered for folder configs/" << kind << " (" << e.path() << ")";
    EXPECT_NO_THROW(it->second(e.path().string())) << e.path();
    ++files;
  }
  EXPECT_GE(files, 5);
}

TEST(ConfigsDir, AttentionSpecErrorsNameKeyAndLine) {
  const std::string yaml = "mode: xattention\nxattention:\n  stride: 12\n";
  try {
    xattn::config::parse<xattn::attention::AttentionSpec>(yaml, "p.yaml");
    FAIL();
  } catch (const xattn::Error& e) {
    EXPECT_NE(std::string(e.what()).find("xattention.stride (p.yaml line 3): must be one of 4, 8, 16, 32, 64; got 12"),
              std::string::npos)
        << e.what();
  }
  try {
    xattn::config::parse<xattn::attention::AttentionSpec>("xattention:\n  stride: 64\n  block_size: 64\n", "ok.yaml");
    xattn::config::parse<xattn::attention::AttentionSpec>("xattention:\n  stride: 32\n  block_size: 64\n", "ok.yaml");
  } catch (const xattn::Error& e) {
    FAIL() << e.what();
  }
  const auto spec = xattn::config::from_overrides<xattn::attention::AttentionSpec>({"xattention.threshold=1"});
  EXPECT_TRUE(spec.is_dense());
}
