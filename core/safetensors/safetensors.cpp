#include "core/safetensors/safetensors.h"

#include <c10/core/GradMode.h>

#include <algorithm>
#include <cstdint>
#include <set>

#include "core/error.h"

namespace xattn::safetensors {

at::ScalarType to_scalar_type(DType dtype) {
  switch (dtype) {
    case DType::kBool: return at::kBool;
    case DType::kU8: return at::kByte;
    case DType::kI8: return at::kChar;
    case DType::kI16: return at::kShort;
    case DType::kI32: return at::kInt;
    case DType::kI64: return at::kLong;
    case DType::kF16: return at::kHalf;
    case DType::kBF16: return at::kBFloat16;
    case DType::kF32: return at::kFloat;
    case DType::kF64: return at::kDouble;
    default: break;
  }
  throw Error("safetensors", std::string("dtype ") + dtype_name(dtype) + " has no LibTorch equivalent");
}

DType from_scalar_type(at::ScalarType type) {
  switch (type) {
    case at::kBool: return DType::kBool;
    case at::kByte: return DType::kU8;
    case at::kChar: return DType::kI8;
    case at::kShort: return DType::kI16;
    case at::kInt: return DType::kI32;
    case at::kLong: return DType::kI64;
    case at::kHalf: return DType::kF16;
    case at::kBFloat16: return DType::kBF16;
    case at::kFloat: return DType::kF32;
    case at::kDouble: return DType::kF64;
    default: break;
  }
  throw Error("safetensors", std::string("cannot store tensors of type ") + c10::toString(type));
}

bool is_zero_copy(const std::shared_ptr<File>& file, const TensorInfo& info) {
  const auto addr = reinterpret_cast<uintptr_t>(file->data(info));
  return addr % dtype_size(info.dtype) == 0;
}

at::Tensor to_tensor(const std::shared_ptr<File>& file, const TensorInfo& info) {
  const at::ScalarType type = to_scalar_type(info.dtype);
  const auto options = at::TensorOptions().dtype(type).device(at::kCPU);
  if (info.numel() == 0) return at::empty(info.shape, options);
  if (is_zero_copy(file, info)) {
    std::shared_ptr<File> keep = file;
    return at::from_blob(file->mutable_data(info), info.shape, [keep](void*) mutable { keep.reset(); }, options);
  }
  at::Tensor out = at::empty(info.shape, options);
  std::memcpy(out.data_ptr(), file->data(info), info.nbytes());
  return out;
}

std::map<std::string, at::Tensor> load(const std::string& path) {
  const Checkpoint c = Checkpoint::open(path);
  std::map<std::string, at::Tensor> out;
  for (const std::string& name : c.names()) {
    auto found = c.find(name);
    out.emplace(name, to_tensor(found.first, *found.second));
  }
  return out;
}

void save(const std::string& path, const std::map<std::string, at::Tensor>& tensors,
          const std::map<std::string, std::string>& metadata) {
  std::vector<at::Tensor> keep;
  std::vector<TensorView> views;
  for (const auto& kv : tensors) {
    XATTN_CHECK_IN("safetensors", kv.second.defined(), "tensor '", kv.first, "' is undefined");
    at::Tensor t = kv.second.detach().to(at::kCPU).contiguous();
    keep.push_back(t);
    TensorView v;
    v.name = kv.first;
    v.dtype = from_scalar_type(t.scalar_type());
    v.shape = t.sizes().vec();
    v.data = t.data_ptr();
    views.push_back(std::move(v));
  }
  write(path, views, metadata);
}

std::string LoadReport::summary() const {
  std::string s;
  auto line = [&](const std::string& l) { s += (s.empty() ? "" : "\n") + l; };
  for (const auto& m : missing) line("missing in checkpoint: '" + m + "'");
  for (const auto& u : unexpected) line("unexpected in checkpoint: '" + u + "'");
  for (const auto& m : mismatched)
    line("shape mismatch for '" + m.name + "': parameter is " + shape_str(m.expected) + ", checkpoint has " +
         shape_str(m.found));
  return s;
}

LoadReport load_into(const Checkpoint& checkpoint, const std::map<std::string, at::Tensor>& params,
                     const LoadOptions& options) {
  LoadReport report;
  std::vector<std::pair<std::string, at::Tensor>> to_copy;
  for (const auto& kv : params) {
    if (!checkpoint.contains(kv.first)) {
      report.missing.push_back(kv.first);
      continue;
    }
    auto found = checkpoint.find(kv.first);
    const std::vector<int64_t> expected = kv.second.sizes().vec();
    if (found.second->shape != expected) {
      report.mismatched.push_back({kv.first, expected, found.second->shape});
      continue;
    }
    to_copy.emplace_back(kv.first, kv.second);
  }
  for (const std::string& name : checkpoint.names())
    if (!params.count(name)) report.unexpected.push_back(name);
  const bool unexpected_fails = !options.allow_unexpected && !report.unexpected.empty();
  if (options.strict && (!report.missing.empty() || !report.mismatched.empty() || unexpected_fails)) {
    LoadReport shown = report;
    if (options.allow_unexpected) shown.unexpected.clear();
    const size_t n = shown.missing.size() + shown.unexpected.size() + shown.mismatched.size();
    throw Error("safetensors", checkpoint.path() + ": " + std::to_string(n) + " problem(s) loading " +
                                   std::to_string(params.size()) + " parameters:\n" + shown.summary());
  }
  if (options.dry_run) return report;
  c10::AutoGradMode no_grad(false);  // parameters may require grad; copying into them is not a graph op
  for (auto& kv : to_copy) {
    auto found = checkpoint.find(kv.first);
    at::Tensor src = to_tensor(found.first, *found.second);
    at::Tensor dst = kv.second;
    dst.copy_(src);
    report.loaded.push_back(kv.first);
  }
  return report;
}

}  // namespace xattn::safetensors
