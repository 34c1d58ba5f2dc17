#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/safetensors/safetensors.h"
#include "tests/test_util.h"

namespace st = xattn::safetensors;

using xattn::testing::error_of;

namespace {
std::string tmp(const std::string& name) { return std::string(XATTN_TEST_TMPDIR) + "/" + name; }
}  // namespace

TEST(Safetensors, SaveLoadIsBitExactForEveryTorchDType) {
  at::manual_seed(1);
  std::map<std::string, at::Tensor> in;
  in["f32"] = at::randn({7, 3});
  in["f64"] = at::randn({4}, at::kDouble);
  in["f16"] = at::randn({5, 2}).to(at::kHalf);
  in["bf16"] = at::randn({3, 3}).to(at::kBFloat16);
  in["i64"] = at::randint(-(1ll << 40), 1ll << 40, {6}, at::kLong);
  in["i32"] = at::randint(-100000, 100000, {6}, at::kInt);
  in["i16"] = at::randint(-30000, 30000, {6}, at::kShort);
  in["i8"] = at::randint(-128, 127, {9}, at::kChar);
  in["u8"] = at::randint(0, 255, {9}, at::kByte);
  in["bool"] = at::randint(0, 2, {11}, at::kLong).to(at::kBool);
  in["strided"] = at::randn({4, 6}).t();  // non-contiguous input
  const std::string path = tmp("torch_roundtrip.safetensors");
  st::save(path, in, {{"by", "test"}});
  const auto out = st::load(path);
  ASSERT_EQ(out.size(), in.size());
  for (const auto& kv : in) {
    const at::Tensor& got = out.at(kv.first);
    EXPECT_EQ(got.scalar_type(), kv.second.scalar_type()) << kv.first;
    EXPECT_EQ(got.sizes(), kv.second.sizes()) << kv.first;
    EXPECT_TRUE(at::equal(got, kv.second)) << kv.first;
  }
}

TEST(Safetensors, ZeroCopyViewKeepsTheFileAlive) {
  const std::string path = tmp("zerocopy.safetensors");
  st::save(path, {{"w", at::arange(16, at::kFloat)}});
  at::Tensor view;
  {
    auto file = st::File::open(path);
    ASSERT_TRUE(st::is_zero_copy(file, file->get("w")));
    view = st::to_tensor(file, file->get("w"));
    EXPECT_EQ(view.data_ptr(), static_cast<const void*>(file->data(file->get("w"))));
  }
  // The File object is gone; the tensor must still read the mapped data.
  EXPECT_FLOAT_EQ(view[15].item<float>(), 15.0f);
  view.add_(1);  // private mapping: writable without touching the file
  EXPECT_FLOAT_EQ(st::load(path).at("w")[15].item<float>(), 15.0f);
}

// Made with Python's `safetensors` on the H100 machine by tests/fixtures/make_fixtures.py;
// values follow formulas in that script, checked here independently of our writer.
TEST(Safetensors, ReadsFileWrittenByPythonSafetensors) {
  const std::string path = std::string(XATTN_SOURCE_DIR) + "/tests/fixtures/python_safetensors.safetensors";
  ASSERT_TRUE(std::filesystem::exists(path)) << path;
  auto file = st::File::open(path);
  EXPECT_EQ(file->metadata().at("made_by"), "python safetensors");
  const auto t = st::load(path);
  EXPECT_TRUE(at::equal(t.at("f32"), at::arange(12, at::kFloat).reshape({3, 4}) * 0.5));
  EXPECT_TRUE(at::equal(t.at("bf16"), (at::arange(-8, 8, at::kFloat) * 0.25).to(at::kBFloat16)));
  EXPECT_TRUE(at::equal(t.at("f16"), (at::arange(6, at::kFloat) - 2.5).to(at::kHalf).reshape({2, 3})));
  EXPECT_TRUE(at::equal(t.at("i64"), at::arange(5, at::kLong) * static_cast<int64_t>(1000000000000) - 7));
  EXPECT_TRUE(at::equal(t.at("i32"), at::arange(-3, 3, at::kInt)));
  EXPECT_TRUE(at::equal(t.at("i8"), at::arange(-4, 4, at::kChar)));
  EXPECT_TRUE(at::equal(t.at("u8"), at::arange(250, 256, at::kLong).to(at::kByte)));
  EXPECT_TRUE(at::equal(t.at("bool"), at::arange(7, at::kLong).remainder(3).eq(0)));
  EXPECT_EQ(t.at("empty").numel(), 0);
  EXPECT_EQ(t.at("empty").sizes(), at::IntArrayRef({0, 3}));
}

TEST(Safetensors, LoadIntoReportsMissingUnexpectedAndMismatched) {
  const std::string path = tmp("ckpt.safetensors");
  st::save(path, {{"a.weight", at::ones({4, 4})}, {"b.bias", at::full({5}, 2.0)}, {"extra", at::zeros({1})}});
  std::map<std::string, at::Tensor> params = {
      {"a.weight", at::zeros({4, 4}, at::kDouble)},  // different dtype: converted on copy
      {"b.bias", at::zeros({4})},                    // wrong shape
      {"c.weight", at::zeros({2})},                  // missing
  };
  const auto ckpt = st::Checkpoint::open(path);
  const std::string e = error_of([&] { st::load_into(ckpt, params, {true}); });
  EXPECT_NE(e.find("3 problem(s)"), std::string::npos) << e;
  EXPECT_NE(e.find("missing in checkpoint: 'c.weight'"), std::string::npos) << e;
  EXPECT_NE(e.find("unexpected in checkpoint: 'extra'"), std::string::npos) << e;
  EXPECT_NE(e.find("shape mismatch for 'b.bias': parameter is [4], checkpoint has [5]"), std::string::npos) << e;
  EXPECT_EQ(params["a.weight"].sum().item<double>(), 0.0) << "strict failure must copy nothing";

  const auto report = st::load_into(ckpt, params, {false});
  EXPECT_FALSE(report.ok());
  EXPECT_EQ(report.loaded, (std::vector<std::string>{"a.weight"}));
  EXPECT_EQ(params["a.weight"].sum().item<double>(), 16.0);
  EXPECT_EQ(params["b.bias"].sum().item<float>(), 0.0f);

  // Strict but tolerant of extra tensors: only the real problems fail, and only they are named.
  st::LoadOptions tolerant;
  tolerant.allow_unexpected = true;
  const std::string e2 = error_of([&] { st::load_into(ckpt, params, tolerant); });
  EXPECT_NE(e2.find("2 problem(s)"), std::string::npos) << e2;
  EXPECT_EQ(e2.find("extra"), std::string::npos) << e2;
  std::map<std::string, at::Tensor> good = {{"a.weight", at::zeros({4, 4})}, {"b.bias", at::zeros({5})}};
  const auto ok = st::load_into(ckpt, good, tolerant);
  EXPECT_EQ(ok.unexpected, (std::vector<std::string>{"extra"}));
  EXPECT_EQ(good["b.bias"].sum().item<float>(), 10.0f);
}
