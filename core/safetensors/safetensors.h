// safetensors <-> ATen tensors, and loading checkpoints into named parameters.
//
//   auto ckpt = xattn::safetensors::Checkpoint::open("model_dir");   // file, dir or index.json
//   auto report = xattn::safetensors::load_into(ckpt, params, {/*strict=*/true});
//   xattn::safetensors::save("out.safetensors", {{"w", w}}, {{"format", "pt"}});
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/safetensors/format.h"

namespace xattn::safetensors {

// BOOL U8 I8 I16 I32 I64 F16 BF16 F32 F64 map to ATen; U16/U32/U64 throw (LibTorch 1.13
// has no such types).
at::ScalarType to_scalar_type(DType dtype);
DType from_scalar_type(at::ScalarType type);

// A CPU tensor over the file's mapping when the data is suitably aligned (zero-copy; the
// tensor keeps the file mapped; writes stay private), else a copy.
at::Tensor to_tensor(const std::shared_ptr<File>& file, const TensorInfo& info);
// Whether to_tensor() would return a zero-copy view.
bool is_zero_copy(const std::shared_ptr<File>& file, const TensorInfo& info);

// Every tensor of a checkpoint (file, directory or index), by name.
std::map<std::string, at::Tensor> load(const std::string& path);

// Writes tensors (any device, any strides) as contiguous little-endian data.
void save(const std::string& path, const std::map<std::string, at::Tensor>& tensors,
          const std::map<std::string, std::string>& metadata = {});

struct ShapeMismatch {
  std::string name;
  std::vector<int64_t> expected;  // the parameter's shape
  std::vector<int64_t> found;     // the checkpoint's shape
};

struct LoadReport {
  std::vector<std::string> loaded;
  std::vector<std::string> missing;     // parameters the checkpoint lacks
  std::vector<std::string> unexpected;  // checkpoint tensors no parameter takes
  std::vector<ShapeMismatch> mismatched;
  bool ok() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
  std::string summary() const;  // one line per problem, for logs and errors
};

struct LoadOptions {
  // Strict: any missing, unexpected or mismatched key is an error and nothing is copied.
  // Non-strict: matching tensors are copied, the rest reported.
  bool strict = true;
  // Checkpoint tensors that no parameter takes are only reported, even when strict (a text
  // model read from a vision-language checkpoint, for instance).
  bool allow_unexpected = false;
  // Check names and shapes only; copy nothing (parameters may live on the meta device).
  bool dry_run = false;
};

// Copies checkpoint tensors into the given parameters (converted to each parameter's
// dtype and device).
LoadReport load_into(const Checkpoint& checkpoint, const std::map<std::string, at::Tensor>& params,
                     const LoadOptions& options = {});

}  // namespace xattn::safetensors
