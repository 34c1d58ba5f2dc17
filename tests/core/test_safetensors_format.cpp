#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/safetensors/format.h"

namespace st = xattn::safetensors;
namespace fs = std::filesystem;

namespace {

// Builds a file image by hand (header length, JSON text, data), independent of our writer.
std::vector<uint8_t> image(const std::string& json, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> out;
  out.reserve(8 + json.size() + data.size());
  out.resize(8);
  const uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(n >> (8 * i));
  out.insert(out.end(), json.begin(), json.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

std::string validate_error(const std::vector<uint8_t>& bytes) {
  try {
    st::File::validate(bytes.data(), bytes.size(), "t.safetensors", nullptr, nullptr);
  } catch (const xattn::Error& e) {
    return e.what();
  }
  return "<no error>";
}

std::string tmp(const std::string& name) { return std::string(XATTN_TEST_TMPDIR) + "/" + name; }

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace

TEST(SafetensorsFormat, ReadsHandBuiltFile) {
  // Two F32 values and three I16 values, with metadata; offsets written by hand.
  float f[2] = {1.5f, -2.25f};
  int16_t s[3] = {7, -300, 32767};
  std::vector<uint8_t> data(8 + 6);
  std::memcpy(data.data(), f, 8);
  std::memcpy(data.data() + 8, s, 6);
  const std::string json =
      R"({"__metadata__":{"format":"pt"},"b":{"dtype":"I16","shape":[3],"data_offsets":[8,14]},)"
      R"("a":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]}})";
  const auto bytes = image(json, data);
  std::vector<st::TensorInfo> tensors;
  std::map<std::string, std::string> meta;
  st::File::validate(bytes.data(), bytes.size(), "hand", &tensors, &meta);
  ASSERT_EQ(tensors.size(), 2u);
  EXPECT_EQ(tensors[0].name, "a");  // offset order
  EXPECT_EQ(tensors[0].shape, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(tensors[1].dtype, st::DType::kI16);
  EXPECT_EQ(meta.at("format"), "pt");

  const std::string path = tmp("hand.safetensors");
  write_bytes(path, bytes);
  auto file = st::File::open(path);
  float got_f[2];
  std::memcpy(got_f, file->data(file->get("a")), 8);
  EXPECT_EQ(got_f[0], 1.5f);
  EXPECT_EQ(got_f[1], -2.25f);
  int16_t got_s[3];
  std::memcpy(got_s, file->data(file->get("b")), 6);
  EXPECT_EQ(got_s[1], -300);
  EXPECT_EQ(got_s[2], 32767);
}

TEST(SafetensorsFormat, RoundTripIsBitExactForEveryDType) {
  std::mt19937 rng(123);
  const st::DType all[] = {st::DType::kBool, st::DType::kU8,  st::DType::kI8,   st::DType::kI16, st::DType::kU16,
                           st::DType::kI32,  st::DType::kU32, st::DType::kI64,  st::DType::kU64, st::DType::kF16,
                           st::DType::kBF16, st::DType::kF32, st::DType::kF64};
  std::vector<std::vector<uint8_t>> payloads;
  std::vector<st::TensorView> views;
  for (st::DType d : all) {
    const std::vector<int64_t> shape = {3, 5};
    std::vector<uint8_t> bytes(15 * st::dtype_size(d));
    for (auto& b : bytes) b = static_cast<uint8_t>(rng());
    if (d == st::DType::kBool)
      for (auto& b : bytes) b &= 1;
    payloads.push_back(bytes);
  }
  for (size_t i = 0; i < std::size(all); ++i)
    views.push_back({std::string("t_") + st::dtype_name(all[i]), all[i], {3, 5}, payloads[i].data()});
  views.push_back({"empty", st::DType::kF32, {0, 4}, nullptr});
  const std::string path = tmp("roundtrip.safetensors");
  st::write(path, views, {{"k", "v"}});
  auto file = st::File::open(path);
  EXPECT_EQ(file->metadata().at("k"), "v");
  for (size_t i = 0; i < std::size(all); ++i) {
    const auto& info = file->get(views[i].name);
    EXPECT_EQ(info.dtype, all[i]);
    ASSERT_EQ(info.nbytes(), payloads[i].size());
    EXPECT_EQ(0, std::memcmp(file->data(info), payloads[i].data(), payloads[i].size())) << views[i].name;
  }
  EXPECT_EQ(file->get("empty").numel(), 0u);
  // The header is padded so that data starts 8-byte aligned, as the reference writer does.
  std::ifstream in(path, std::ios::binary);
  uint8_t hdr[8];
  in.read(reinterpret_cast<char*>(hdr), 8);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | hdr[i];
  EXPECT_EQ((8 + n) % 8, 0u);
}

TEST(SafetensorsFormat, RejectsBrokenFilesWithClearMessages) {
  const std::vector<uint8_t> d8(8, 0);
  struct Case {
    std::vector<uint8_t> bytes;
    std::string expect;
  };
  std::vector<uint8_t> truncated = image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", d8);
  truncated.resize(truncated.size() - 3);
  std::vector<uint8_t> short_header = image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", d8);
  short_header.resize(20);
  const std::vector<Case> cases = {
      {{1, 2, 3}, "too short for the 8-byte header length"},
      {short_header, "exceeds the file size"},
      {image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})", d8), "header is not valid JSON"},
      {image(R"([1,2])", d8), "does not start with a JSON object"},
      {image(R"({"a":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}})", d8), "unknown dtype 'F33'"},
      {image(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", d8),
       "dtype F32 x shape [3] = 12 bytes, but data_offsets span 8"},
      {truncated, "out of bounds of the 5-byte data buffer"},
      {image(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}})",
             std::vector<uint8_t>(6, 0)),
       "overlap tensor 'a'"},
      {image(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", d8), "bytes [0, 4) of the data buffer belong to no tensor"},
      {image(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", d8), "data buffer is 8 bytes but tensors cover 4"},
      {image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", d8), "end before begin"},
      {image(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", d8), "shape entries must be non-negative"},
      {image(R"({"a":{"dtype":"F32","shape":[2]}})", d8), "'data_offsets' must be an array"},
      {image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}})", d8), "unexpected field 'x'"},
      {image(R"({"__metadata__":{"k":3},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", d8),
       "__metadata__['k'] must be a string"},
      {image(R"({"a":{"dtype":"U8","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}})", d8), "overflows"},
  };
  for (const Case& c : cases) {
    const std::string e = validate_error(c.bytes);
    EXPECT_NE(e.find(c.expect), std::string::npos) << "expected '" << c.expect << "' in: " << e;
    EXPECT_NE(e.find("t.safetensors"), std::string::npos) << e;
  }
}

TEST(SafetensorsFormat, HugeHeaderLengthIsRejectedWithoutAllocating) {
  std::vector<uint8_t> b(16, 0);
  b[7] = 0x7f;  // ~9e18
  EXPECT_NE(validate_error(b).find("exceeds the 100 MiB limit"), std::string::npos);
}

TEST(SafetensorsFormat, RandomAndMutatedInputsNeverCrash) {
  std::mt19937 rng(7);
  float vals[4] = {1, 2, 3, 4};
  const auto good = st::serialize({{"w", st::DType::kF32, {2, 2}, vals}});
  int accepted = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::vector<uint8_t> b = good;
    if (iter % 3 == 0) {
      b.resize(rng() % 64);
      for (auto& x : b) x = static_cast<uint8_t>(rng());
    } else {
      const int flips = 1 + static_cast<int>(rng() % 4);
      for (int k = 0; k < flips; ++k) b[rng() % b.size()] = static_cast<uint8_t>(rng());
      if (iter % 5 == 0) b.resize(rng() % (b.size() + 1));
    }
    try {
      std::vector<st::TensorInfo> t;
      st::File::validate(b.data(), b.size(), "fuzz", &t, nullptr);
      for (const auto& info : t) ASSERT_LE(info.end, b.size());
      ++accepted;
    } catch (const xattn::Error&) {
    }
  }
  EXPECT_LT(accepted, 3000);  // mutations must be caught most of the time
}

TEST(SafetensorsFormat, MissingFileAndDirectory) {
  try {
    st::File::open("/nonexistent/file.safetensors");
    FAIL();
  } catch (const xattn::Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/file.safetensors: cannot open"), std::string::npos) << e.what();
  }
  try {
    st::File::open(XATTN_TEST_TMPDIR);
    FAIL();
  } catch (const xattn::Error& e) {
    EXPECT_NE(std::string(e.what()).find("not a regular file"), std::string::npos) << e.what();
  }
}

TEST(SafetensorsFormat, ShardedCheckpointThroughIndex) {
  const fs::path dir = tmp("sharded");
  fs::remove_all(dir);
  fs::create_directories(dir);
  float a[3] = {1, 2, 3};
  int32_t b[2] = {-5, 9};
  st::write((dir / "model-00001-of-00002.safetensors").string(), {{"layer.0.w", st::DType::kF32, {3}, a}});
  st::write((dir / "model-00002-of-00002.safetensors").string(), {{"layer.1.w", st::DType::kI32, {2}, b}});
  {
    std::ofstream idx(dir / "model.safetensors.index.json");
    idx << R"({"metadata":{"total_size":20},"weight_map":{"layer.0.w":"model-00001-of-00002.safetensors",)"
        << R"("layer.1.w":"model-00002-of-00002.safetensors"}})";
  }
  for (const std::string& p : {dir.string(), (dir / "model.safetensors.index.json").string()}) {
    auto c = st::Checkpoint::open(p);
    EXPECT_EQ(c.names(), (std::vector<std::string>{"layer.0.w", "layer.1.w"}));
    EXPECT_EQ(c.shards().size(), 2u);
    auto found = c.find("layer.1.w");
    int32_t got[2];
    std::memcpy(got, found.first->data(*found.second), 8);
    EXPECT_EQ(got[0], -5);
    EXPECT_EQ(got[1], 9);
  }
  {
    std::ofstream idx(dir / "model.safetensors.index.json");
    idx << R"({"weight_map":{"layer.9.w":"model-00001-of-00002.safetensors"}})";
  }
  try {
    st::Checkpoint::open(dir.string());
    FAIL();
  } catch (const xattn::Error& e) {
    EXPECT_NE(std::string(e.what()).find("names 'layer.9.w' in model-00001-of-00002.safetensors, but that shard has no such tensor"),
              std::string::npos)
        << e.what();
  }
}
