#include <gtest/gtest.h>

#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "core/config/config.h"
#include "tests/test_util.h"

namespace cfg = xattn::config;

using xattn::testing::error_of;

namespace {

struct Inner {
  int stride = 8;
  double threshold = 0.9;
  template <class V>
  void fields(V& v) {
    v.field("stride", stride, "antidiagonal stride", cfg::one_of<int>({4, 8, 16}));
    v.field("threshold", threshold, "tau", cfg::range(0.0, 1.0));
  }
};

struct Outer {
  std::string mode = "xattention";
  int64_t steps = 50;
  bool verbose = false;
  std::vector<int> dense_layers = {0, 1};
  std::optional<double> scale;
  Inner inner;
  std::vector<Inner> layers;
  int lo = 1;
  int hi = 4;
  template <class V>
  void fields(V& v) {
    v.field("mode", mode, "dense or xattention", cfg::one_of<std::string>({"dense", "xattention"}));
    v.field("steps", steps, "denoising steps", cfg::at_least<int64_t>(1));
    v.field("verbose", verbose, "log more");
    v.field("dense_layers", dense_layers, "layers kept dense", cfg::each(cfg::at_least(0)));
    v.field("scale", scale, "optional scale");
    v.field("inner", inner, "nested");
    v.field("layers", layers, "per-layer overrides");
    v.field("lo", lo, "lower bound");
    v.field("hi", hi, "upper bound");
  }
  std::string check() const { return lo <= hi ? "" : "lo must not exceed hi"; }
};


}  // namespace

TEST(Config, EmptyDocumentGivesDefaults) {
  Outer o = cfg::parse<Outer>("", "empty.yaml");
  EXPECT_EQ(o.mode, "xattention");
  EXPECT_EQ(o.steps, 50);
  EXPECT_EQ(o.inner.stride, 8);
  EXPECT_EQ(o.dense_layers, (std::vector<int>{0, 1}));
  EXPECT_FALSE(o.scale.has_value());
}

TEST(Config, ParsesEveryKind) {
  Outer o = cfg::parse<Outer>(
      "mode: dense\nsteps: 30\nverbose: yes\ndense_layers: [3, 5]\nscale: 0.125\n"
      "inner: {stride: 16, threshold: 0.95}\nlayers:\n  - stride: 4\n  - threshold: 0.5\n",
      "t.yaml");
  EXPECT_EQ(o.mode, "dense");
  EXPECT_EQ(o.steps, 30);
  EXPECT_TRUE(o.verbose);
  EXPECT_EQ(o.dense_layers, (std::vector<int>{3, 5}));
  ASSERT_TRUE(o.scale.has_value());
  EXPECT_DOUBLE_EQ(*o.scale, 0.125);
  EXPECT_EQ(o.inner.stride, 16);
  EXPECT_DOUBLE_EQ(o.inner.threshold, 0.95);
  ASSERT_EQ(o.layers.size(), 2u);
  EXPECT_EQ(o.layers[0].stride, 4);
  EXPECT_DOUBLE_EQ(o.layers[0].threshold, 0.9);
  EXPECT_DOUBLE_EQ(o.layers[1].threshold, 0.5);
}

TEST(Config, UnknownKeyNamesPathLineAndAlternatives) {
  const std::string e = error_of([] { cfg::parse<Outer>("steps: 3\ninner:\n  strde: 8\n", "p.yaml"); });
  EXPECT_NE(e.find("inner.strde"), std::string::npos) << e;
  EXPECT_NE(e.find("p.yaml line 3"), std::string::npos) << e;
  EXPECT_NE(e.find("unknown key 'strde'"), std::string::npos) << e;
  EXPECT_NE(e.find("stride, threshold"), std::string::npos) << e;
}

TEST(Config, WrongTypeNamesPathAndValue) {
  const std::string e = error_of([] { cfg::parse<Outer>("mode: dense\nsteps: many\n", "w.yaml"); });
  EXPECT_NE(e.find("steps (w.yaml line 2): expected an integer, got 'many'"), std::string::npos) << e;
  const std::string e2 = error_of([] { cfg::parse<Outer>("verbose: maybe\n", "w.yaml"); });
  EXPECT_NE(e2.find("expected true or false"), std::string::npos) << e2;
  const std::string e3 = error_of([] { cfg::parse<Outer>("dense_layers: 3\n", "w.yaml"); });
  EXPECT_NE(e3.find("dense_layers (w.yaml line 1): expected a list"), std::string::npos) << e3;
  const std::string e4 = error_of([] { cfg::parse<Outer>("inner: 5\n", "w.yaml"); });
  EXPECT_NE(e4.find("inner (w.yaml line 1): expected a map"), std::string::npos) << e4;
  const std::string e5 = error_of([] { cfg::parse<Outer>("layers:\n  - stride: 4.5\n", "w.yaml"); });
  EXPECT_NE(e5.find("layers[0].stride (w.yaml line 2)"), std::string::npos) << e5;
}

TEST(Config, OutOfRangeNamesPathAndBounds) {
  const std::string e = error_of([] { cfg::parse<Outer>("inner:\n  threshold: 1.5\n", "r.yaml"); });
  EXPECT_NE(e.find("inner.threshold (r.yaml line 2): must be in [0, 1], got 1.5"), std::string::npos) << e;
  const std::string e2 = error_of([] { cfg::parse<Outer>("inner: {stride: 12}\n", "r.yaml"); });
  EXPECT_NE(e2.find("must be one of 4, 8, 16; got 12"), std::string::npos) << e2;
  const std::string e3 = error_of([] { cfg::parse<Outer>("dense_layers: [1, -2]\n", "r.yaml"); });
  EXPECT_NE(e3.find("element 1 must be at least 0, got -2"), std::string::npos) << e3;
  const std::string e4 = error_of([] { cfg::parse<Outer>("steps: 99999999999999999999\n", "r.yaml"); });
  EXPECT_NE(e4.find("out of range"), std::string::npos) << e4;
}

TEST(Config, CrossFieldCheck) {
  const std::string e = error_of([] { cfg::parse<Outer>("lo: 5\nhi: 2\n", "x.yaml"); });
  EXPECT_NE(e.find("lo must not exceed hi"), std::string::npos) << e;
}

TEST(Config, InvalidYamlAndDuplicateKeys) {
  const std::string e = error_of([] { cfg::parse<Outer>("steps: [1, 2\n", "bad.yaml"); });
  EXPECT_NE(e.find("bad.yaml line"), std::string::npos) << e;
  EXPECT_NE(e.find("invalid YAML"), std::string::npos) << e;
  const std::string e2 = error_of([] { cfg::parse<Outer>("steps: 1\nsteps: 2\n", "dup.yaml"); });
  EXPECT_NE(e2.find("duplicate key 'steps'"), std::string::npos) << e2;
}

TEST(Config, OverridesFromTheCommandLine) {
  Outer o = cfg::parse<Outer>("steps: 10\n", "o.yaml", {"steps=20", "inner.threshold=0.5", "dense_layers=[7]"});
  EXPECT_EQ(o.steps, 20);
  EXPECT_DOUBLE_EQ(o.inner.threshold, 0.5);
  EXPECT_EQ(o.dense_layers, (std::vector<int>{7}));
  const std::string e = error_of([] { cfg::from_overrides<Outer>({"inner.thresh=0.5"}); });
  EXPECT_NE(e.find("unknown key 'thresh'"), std::string::npos) << e;
  EXPECT_NE(e.find("from --set inner.thresh=0.5"), std::string::npos) << e;
  const std::string e2 = error_of([] { cfg::from_overrides<Outer>({"inner.threshold=2"}); });
  EXPECT_NE(e2.find("inner.threshold (from --set inner.threshold=2): must be in [0, 1]"), std::string::npos) << e2;
  const std::string e3 = error_of([] { cfg::from_overrides<Outer>({"novalue"}); });
  EXPECT_NE(e3.find("expected KEY=VALUE"), std::string::npos) << e3;
}

TEST(Config, YamlRoundTripIsExact) {
  Outer o;
  o.mode = "dense";
  o.steps = 7;
  o.scale = 0.1;  // not exactly representable: shortest round-trip text must bring back the same double
  o.inner.threshold = 0.123456789012345;
  o.layers.push_back(Inner{16, 0.7});
  const std::string yaml = cfg::to_yaml(o);
  Outer back = cfg::parse<Outer>(yaml, "roundtrip");
  EXPECT_EQ(back.mode, o.mode);
  EXPECT_EQ(back.steps, o.steps);
  EXPECT_EQ(*back.scale, *o.scale);
  EXPECT_EQ(back.inner.threshold, o.inner.threshold);
  ASSERT_EQ(back.layers.size(), 1u);
  EXPECT_EQ(back.layers[0].stride, 16);
  EXPECT_EQ(cfg::to_yaml(back), yaml);
}

TEST(Config, WriteYamlFileAndLoadItBack) {
  Outer o;
  o.steps = 42;
  const std::string path = std::string(XATTN_TEST_TMPDIR) + "/resolved.yaml";
  cfg::write_yaml(o, path, "resolved config");
  Outer back = cfg::load<Outer>(path);
  EXPECT_EQ(back.steps, 42);
  std::ifstream in(path);
  std::string first;
  std::getline(in, first);
  EXPECT_EQ(first, "# resolved config");
  const std::string e = error_of([] { cfg::load<Outer>("/nonexistent/x.yaml"); });
  EXPECT_NE(e.find("/nonexistent/x.yaml: cannot open"), std::string::npos) << e;
}

TEST(Config, DescribeListsEveryLeafWithDefault) {
  const auto docs = cfg::describe<Outer>();
  bool found = false;
  for (const auto& d : docs)
    if (d.path == "inner.threshold") {
      found = true;
      EXPECT_EQ(d.default_value, "0.9");
      EXPECT_EQ(d.type, "number");
      EXPECT_EQ(d.help, "tau");
    }
  EXPECT_TRUE(found);
}
