#include <gtest/gtest.h>

#include "core/device.h"
#include "core/error.h"

TEST(Device, ParsesDevicesAndDtypes) {
  EXPECT_EQ(xattn::parse_device("cpu"), at::Device(at::kCPU));
  EXPECT_EQ(xattn::parse_dtype("bf16"), at::kBFloat16);
  EXPECT_EQ(xattn::parse_dtype("Float16"), at::kHalf);
  EXPECT_EQ(xattn::parse_dtype("auto", at::Device(at::kCPU)), at::kFloat);
  EXPECT_EQ(xattn::default_dtype(at::Device(at::kCUDA, 0)), at::kBFloat16);
  EXPECT_EQ(xattn::dtype_name(at::kBFloat16), "bf16");
  EXPECT_EQ(xattn::shape_str(at::zeros({2, 3})), "[2, 3]");
}

TEST(Device, BadTextAndMissingGpuGiveClearErrors) {
  try {
    xattn::parse_device("tpu");
    FAIL();
  } catch (const xattn::Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad device 'tpu'"), std::string::npos);
  }
  try {
    xattn::parse_dtype("int4");
    FAIL();
  } catch (const xattn::Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad dtype 'int4'"), std::string::npos);
  }
  const int n = xattn::cuda_device_count();
  try {
    xattn::parse_device("cuda:" + std::to_string(n));
    FAIL();
  } catch (const xattn::Error& e) {
    EXPECT_NE(std::string(e.what()).find("cuda:" + std::to_string(n)), std::string::npos) << e.what();
  }
}
