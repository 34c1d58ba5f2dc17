// Device and dtype helpers: CUDA when present; bf16 on GPU, fp32 on CPU by default.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

namespace xattn {

bool cuda_available();
int cuda_device_count();
// cuda:0 when a GPU is usable, else cpu.
at::Device default_device();
// bf16 on CUDA, fp32 on CPU.
at::ScalarType default_dtype(const at::Device& device);
// "auto", "cpu", "cuda", "cuda:N". Throws xattn::Error on bad text or a missing GPU.
at::Device parse_device(const std::string& text);
// "auto" (-> default_dtype(device)), "fp32"/"float32"/"float", "fp16"/"float16"/"half",
// "bf16"/"bfloat16".
at::ScalarType parse_dtype(const std::string& text, const at::Device& device = at::kCPU);
std::string dtype_name(at::ScalarType type);  // "fp32", "bf16", "fp16", else ATen's name
std::string shape_str(const at::Tensor& t);   // "[2, 128, 24, 64]"
// Waits for the work queued on the device's current stream (no-op on the CPU).
void device_synchronize(const at::Device& device);

struct GpuInfo {
  int index = 0;
  std::string name;
  int cc_major = 0;
  int cc_minor = 0;
  int multiprocessors = 0;
  uint64_t memory_bytes = 0;
};
// Empty when CUDA dispatch is not compiled in or no GPU is visible.
std::vector<GpuInfo> cuda_devices();

}  // namespace xattn
