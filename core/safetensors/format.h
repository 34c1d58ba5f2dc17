// safetensors files without LibTorch: strict parsing and validation, read-only memory
// mapping, sharded checkpoints, and writing. core/safetensors/safetensors.h adds ATen
// tensors on top.
//
// Format (https://github.com/huggingface/safetensors): 8-byte little-endian header
// length N, N bytes of JSON {"name": {"dtype", "shape", "data_offsets": [begin, end]},
// "__metadata__": {str: str}}, then the data buffer. Offsets are relative to the buffer.
// We accept exactly what the reference library accepts: offsets in bounds, contiguous
// and non-overlapping, covering the whole buffer, and (end - begin) = numel * dtype size.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace xattn::safetensors {

enum class DType { kBool, kU8, kI8, kI16, kU16, kI32, kU32, kI64, kU64, kF16, kBF16, kF32, kF64 };

size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);  // "F32", "BF16", ...
// Throws xattn::Error for unknown names (names are case-sensitive as in the format).
DType parse_dtype(const std::string& name);

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets into the data buffer
  uint64_t end = 0;
  uint64_t numel() const;
  uint64_t nbytes() const { return end - begin; }
};

std::string shape_str(const std::vector<int64_t>& shape);

// A read-only, copy-on-write mapping of a whole file (writes through the mapping never
// reach the file).
class MappedFile {
 public:
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const uint8_t* data() const { return data_; }
  uint8_t* mutable_data() { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// One parsed and validated .safetensors file.
class File {
 public:
  // Maps and validates the file; throws xattn::Error naming the file and the problem.
  static std::shared_ptr<File> open(const std::string& path);
  // Validates an in-memory image (used by tests and for buffers from elsewhere).
  static void validate(const uint8_t* bytes, size_t size, const std::string& name,
                       std::vector<TensorInfo>* tensors, std::map<std::string, std::string>* metadata);

  const std::string& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }  // in offset order
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const TensorInfo* find(const std::string& name) const;  // nullptr if absent
  const TensorInfo& get(const std::string& name) const;   // throws if absent
  // Pointer to the tensor's bytes inside the mapping (alive as long as this File).
  const uint8_t* data(const TensorInfo& info) const { return buffer_ + info.begin; }
  uint8_t* mutable_data(const TensorInfo& info) { return const_cast<uint8_t*>(buffer_) + info.begin; }

 private:
  File() = default;
  std::string path_;
  std::unique_ptr<MappedFile> map_;
  const uint8_t* buffer_ = nullptr;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
  std::map<std::string, size_t> index_;
};

// A checkpoint that may span shards: a single .safetensors file, a
// *.safetensors.index.json (its "weight_map" names the shard of each tensor), or a
// directory holding either (model.safetensors / model.safetensors.index.json /
// diffusion_pytorch_model.safetensors[.index.json], or exactly one *.safetensors).
class Checkpoint {
 public:
  static Checkpoint open(const std::string& path);

  const std::string& path() const { return path_; }
  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const { return where_.count(name) != 0; }
  // The shard holding `name` and its entry; throws if absent.
  std::pair<std::shared_ptr<File>, const TensorInfo*> find(const std::string& name) const;
  const std::vector<std::shared_ptr<File>>& shards() const { return shards_; }

 private:
  std::string path_;
  std::vector<std::shared_ptr<File>> shards_;
  std::map<std::string, size_t> where_;  // tensor name -> shard index
};

struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const void* data = nullptr;  // numel * dtype_size bytes, little-endian
};

// Writes a file: tensors sorted by name, header padded with spaces to a multiple of 8
// bytes (as the reference writer does), through a temporary file and rename.
void write(const std::string& path, const std::vector<TensorView>& tensors,
           const std::map<std::string, std::string>& metadata = {});
// The same bytes in memory.
std::vector<uint8_t> serialize(const std::vector<TensorView>& tensors,
                               const std::map<std::string, std::string>& metadata = {});

}  // namespace xattn::safetensors
