#include "core/device.h"

#include <ATen/detail/CUDAHooksInterface.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>

#include <algorithm>
#include <cctype>

#ifdef XATTN_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#endif

#include "core/error.h"

namespace xattn {

int cuda_device_count() {
  if (!at::hasCUDA()) return 0;
  return static_cast<int>(at::detail::getCUDAHooks().getNumGPUs());
}

bool cuda_available() { return cuda_device_count() > 0; }

at::Device default_device() { return cuda_available() ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU); }

at::ScalarType default_dtype(const at::Device& device) { return device.is_cuda() ? at::kBFloat16 : at::kFloat; }

at::Device parse_device(const std::string& text) {
  std::string t = text;
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return std::tolower(c); });
  if (t == "auto" || t.empty()) return default_device();
  if (t == "cpu") return at::Device(at::kCPU);
  if (t == "cuda" || t.rfind("cuda:", 0) == 0) {
    int index = 0;
    if (t.size() > 5) {
      const std::string n = t.substr(5);
      XATTN_CHECK_IN("device", !n.empty() && std::all_of(n.begin(), n.end(), ::isdigit), "bad device '", text,
                     "' (expected cpu, cuda, cuda:N or auto)");
      index = std::stoi(n);
    }
    const int count = cuda_device_count();
    XATTN_CHECK_IN("device", count > 0, "device '", text, "' requested but no CUDA GPU is usable",
                   at::hasCUDA() ? "" : " (this LibTorch was built without CUDA)");
    XATTN_CHECK_IN("device", index < count, "device '", text, "' requested but only ", count, " GPU(s) are visible");
    return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  throw Error("device", "bad device '" + text + "' (expected cpu, cuda, cuda:N or auto)");
}

at::ScalarType parse_dtype(const std::string& text, const at::Device& device) {
  std::string t = text;
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return std::tolower(c); });
  if (t == "auto" || t.empty()) return default_dtype(device);
  if (t == "fp32" || t == "float32" || t == "float" || t == "f32") return at::kFloat;
  if (t == "fp16" || t == "float16" || t == "half" || t == "f16") return at::kHalf;
  if (t == "bf16" || t == "bfloat16") return at::kBFloat16;
  throw Error("dtype", "bad dtype '" + text + "' (expected fp32, fp16, bf16 or auto)");
}

std::string dtype_name(at::ScalarType type) {
  switch (type) {
    case at::kFloat: return "fp32";
    case at::kHalf: return "fp16";
    case at::kBFloat16: return "bf16";
    case at::kDouble: return "fp64";
    default: return c10::toString(type);
  }
}

std::string shape_str(const at::Tensor& t) {
  if (!t.defined()) return "undefined";
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + "]";
}

void device_synchronize(const at::Device& device) {
  if (device.is_cpu()) return;
  c10::impl::getDeviceGuardImpl(device.type())->getStream(device).synchronize();
}

std::vector<GpuInfo> cuda_devices() {
  std::vector<GpuInfo> out;
#ifdef XATTN_WITH_CUDA
  const int n = cuda_device_count();
  for (int i = 0; i < n; ++i) {
    const cudaDeviceProp* p = at::cuda::getDeviceProperties(i);
    GpuInfo g;
    g.index = i;
    g.name = p->name;
    g.cc_major = p->major;
    g.cc_minor = p->minor;
    g.multiprocessors = p->multiProcessorCount;
    g.memory_bytes = p->totalGlobalMem;
    out.push_back(g);
  }
#endif
  return out;
}

}  // namespace xattn
