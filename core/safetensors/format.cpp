#include "core/safetensors/format.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"

namespace xattn::safetensors {

namespace fs = std::filesystem;

namespace {
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // the reference library's limit

[[noreturn]] void fail(const std::string& file, const std::string& msg) {
  throw Error("safetensors", file + ": " + msg);
}

struct DTypeEntry {
  DType dtype;
  const char* name;
  size_t size;
};
constexpr DTypeEntry kDTypes[] = {
    {DType::kBool, "BOOL", 1}, {DType::kU8, "U8", 1},     {DType::kI8, "I8", 1},
    {DType::kI16, "I16", 2},   {DType::kU16, "U16", 2},   {DType::kI32, "I32", 4},
    {DType::kU32, "U32", 4},   {DType::kI64, "I64", 8},   {DType::kU64, "U64", 8},
    {DType::kF16, "F16", 2},   {DType::kBF16, "BF16", 2}, {DType::kF32, "F32", 4},
    {DType::kF64, "F64", 8},
};

uint64_t read_le_u64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
}  // namespace

size_t dtype_size(DType dtype) {
  for (const auto& e : kDTypes)
    if (e.dtype == dtype) return e.size;
  return 0;
}
const char* dtype_name(DType dtype) {
  for (const auto& e : kDTypes)
    if (e.dtype == dtype) return e.name;
  return "?";
}
DType parse_dtype(const std::string& name) {
  for (const auto& e : kDTypes)
    if (name == e.name) return e.dtype;
  throw Error("safetensors",
              "unknown dtype '" + name + "' (expected BOOL, U8, I8, I16, U16, I32, U32, I64, U64, F16, BF16, F32 or F64)");
}

uint64_t TensorInfo::numel() const {
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// ---------------------------------------------------------------------------
MappedFile::MappedFile(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    fail(path, std::string("cannot stat: ") + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path, "not a regular file");
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ > 0) {
    // Private + writable: tensors may be handed out as writable views; writes stay in memory.
    void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      fail(path, std::string("mmap failed: ") + std::strerror(err));
    }
    data_ = static_cast<uint8_t*>(p);
  }
  ::close(fd);
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(data_, size_);
}

// ---------------------------------------------------------------------------
void File::validate(const uint8_t* bytes, size_t size, const std::string& name,
                    std::vector<TensorInfo>* tensors_out, std::map<std::string, std::string>* metadata_out) {
  using nlohmann::json;
  if (size < 8) fail(name, "file is " + std::to_string(size) + " bytes, too short for the 8-byte header length");
  const uint64_t n = read_le_u64(bytes);
  if (n > kMaxHeaderBytes)
    fail(name, "header length " + std::to_string(n) + " exceeds the 100 MiB limit (not a safetensors file?)");
  if (n > size - 8)
    fail(name, "header length " + std::to_string(n) + " exceeds the file size " + std::to_string(size) +
                   " (truncated file?)");
  if (n < 2 || bytes[8] != '{') fail(name, "header does not start with a JSON object '{'");
  const char* hb = reinterpret_cast<const char*>(bytes + 8);
  json header;
  try {
    header = json::parse(hb, hb + n);
  } catch (const json::exception& e) {
    fail(name, std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) fail(name, "header is not a JSON object");

  const uint64_t buffer_size = size - 8 - n;
  std::vector<TensorInfo> tensors;
  std::map<std::string, std::string> metadata;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& key = it.key();
    const json& v = it.value();
    if (key == "__metadata__") {
      if (!v.is_object()) fail(name, "__metadata__ must be an object of strings");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) fail(name, "__metadata__['" + m.key() + "'] must be a string");
        metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string what = "tensor '" + key + "'";
    if (!v.is_object()) fail(name, what + ": entry must be an object");
    for (auto f = v.begin(); f != v.end(); ++f)
      if (f.key() != "dtype" && f.key() != "shape" && f.key() != "data_offsets")
        fail(name, what + ": unexpected field '" + f.key() + "'");
    if (!v.contains("dtype") || !v["dtype"].is_string()) fail(name, what + ": missing string field 'dtype'");
    if (!v.contains("shape") || !v["shape"].is_array()) fail(name, what + ": missing array field 'shape'");
    if (!v.contains("data_offsets") || !v["data_offsets"].is_array() || v["data_offsets"].size() != 2)
      fail(name, what + ": 'data_offsets' must be an array [begin, end]");
    TensorInfo t;
    t.name = key;
    try {
      t.dtype = parse_dtype(v["dtype"].get<std::string>());
    } catch (const Error& e) {
      fail(name, what + ": " + e.message());
    }
    uint64_t numel = 1;
    bool overflow = false;
    for (const json& d : v["shape"]) {
      if (!d.is_number_unsigned() && !(d.is_number_integer() && d.get<int64_t>() >= 0))
        fail(name, what + ": shape entries must be non-negative integers");
      const uint64_t dim = d.get<uint64_t>();
      if (dim > static_cast<uint64_t>(INT64_MAX)) overflow = true;
      t.shape.push_back(static_cast<int64_t>(dim));
      overflow = overflow || __builtin_mul_overflow(numel, dim, &numel);
    }
    for (const json& o : v["data_offsets"])
      if (!o.is_number_unsigned() && !(o.is_number_integer() && o.get<int64_t>() >= 0))
        fail(name, what + ": data_offsets must be non-negative integers");
    t.begin = v["data_offsets"][0].get<uint64_t>();
    t.end = v["data_offsets"][1].get<uint64_t>();
    if (t.end < t.begin)
      fail(name, what + ": data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) + "] end before begin");
    if (t.end > buffer_size)
      fail(name, what + ": data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) +
                     "] out of bounds of the " + std::to_string(buffer_size) + "-byte data buffer (truncated file?)");
    uint64_t expect = 0;
    overflow = overflow || __builtin_mul_overflow(numel, static_cast<uint64_t>(dtype_size(t.dtype)), &expect);
    if (overflow) fail(name, what + ": shape " + shape_str(t.shape) + " overflows");
    if (expect != t.nbytes())
      fail(name, what + ": dtype " + dtype_name(t.dtype) + " x shape " + shape_str(t.shape) + " = " +
                     std::to_string(expect) + " bytes, but data_offsets span " + std::to_string(t.nbytes()));
    tensors.push_back(std::move(t));
  }
  std::sort(tensors.begin(), tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t cursor = 0;
  const TensorInfo* prev = nullptr;
  for (const TensorInfo& t : tensors) {
    if (t.begin < cursor)
      fail(name, "tensor '" + t.name + "' bytes [" + std::to_string(t.begin) + ", " + std::to_string(t.end) +
                     ") overlap tensor '" + (prev ? prev->name : std::string()) + "'");
    if (t.begin > cursor)
      fail(name, "bytes [" + std::to_string(cursor) + ", " + std::to_string(t.begin) +
                     ") of the data buffer belong to no tensor");
    cursor = t.end;
    prev = &t;
  }
  if (cursor != buffer_size)
    fail(name, "data buffer is " + std::to_string(buffer_size) + " bytes but tensors cover " + std::to_string(cursor));
  if (tensors_out) *tensors_out = std::move(tensors);
  if (metadata_out) *metadata_out = std::move(metadata);
}

std::shared_ptr<File> File::open(const std::string& path) {
  std::shared_ptr<File> f(new File());
  f->path_ = path;
  f->map_ = std::make_unique<MappedFile>(path);
  validate(f->map_->data(), f->map_->size(), path, &f->tensors_, &f->metadata_);
  f->buffer_ = f->map_->data() + 8 + read_le_u64(f->map_->data());
  for (size_t i = 0; i < f->tensors_.size(); ++i) f->index_[f->tensors_[i].name] = i;
  return f;
}

const TensorInfo* File::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const TensorInfo& File::get(const std::string& name) const {
  const TensorInfo* t = find(name);
  if (!t) fail(path_, "no tensor named '" + name + "'");
  return *t;
}

// ---------------------------------------------------------------------------
Checkpoint Checkpoint::open(const std::string& path_in) {
  Checkpoint c;
  fs::path path(path_in);
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    const char* candidates[] = {"model.safetensors.index.json", "diffusion_pytorch_model.safetensors.index.json",
                                "model.safetensors", "diffusion_pytorch_model.safetensors"};
    fs::path chosen;
    for (const char* cand : candidates)
      if (fs::exists(path / cand)) {
        chosen = path / cand;
        break;
      }
    if (chosen.empty()) {
      std::vector<fs::path> found;
      for (const auto& entry : fs::directory_iterator(path))
        if (entry.path().extension() == ".safetensors") found.push_back(entry.path());
      if (found.size() != 1)
        fail(path_in, found.empty() ? "directory holds no .safetensors file"
                                    : "directory holds several .safetensors files and no *.safetensors.index.json");
      chosen = found[0];
    }
    path = chosen;
  } else if (!fs::exists(path, ec)) {
    fail(path_in, "no such file or directory");
  }
  c.path_ = path.string();
  const std::string p = path.string();
  if (p.size() >= 5 && p.compare(p.size() - 5, 5, ".json") == 0) {
    std::ifstream in(p, std::ios::binary);
    if (!in) fail(p, "cannot open index");
    nlohmann::json index;
    try {
      index = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      fail(p, std::string("index is not valid JSON: ") + e.what());
    }
    if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
      fail(p, "index has no \"weight_map\" object");
    std::map<std::string, size_t> shard_of_file;
    for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
      if (!it.value().is_string()) fail(p, "weight_map['" + it.key() + "'] must be a file name");
      const std::string shard = it.value().get<std::string>();
      if (shard.find('/') != std::string::npos || shard == "..")
        fail(p, "weight_map['" + it.key() + "'] = '" + shard + "' must be a file name beside the index");
      auto s = shard_of_file.find(shard);
      if (s == shard_of_file.end()) {
        c.shards_.push_back(File::open((path.parent_path() / shard).string()));
        s = shard_of_file.emplace(shard, c.shards_.size() - 1).first;
      }
      if (!c.shards_[s->second]->find(it.key()))
        fail(p, "weight_map names '" + it.key() + "' in " + shard + ", but that shard has no such tensor");
      c.where_[it.key()] = s->second;
    }
  } else {
    c.shards_.push_back(File::open(p));
    for (const TensorInfo& t : c.shards_[0]->tensors()) c.where_[t.name] = 0;
  }
  return c;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  for (const auto& kv : where_) out.push_back(kv.first);
  return out;
}

std::pair<std::shared_ptr<File>, const TensorInfo*> Checkpoint::find(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) fail(path_, "checkpoint has no tensor named '" + name + "'");
  const auto& shard = shards_[it->second];
  return {shard, shard->find(name)};
}

// ---------------------------------------------------------------------------
std::vector<uint8_t> serialize(const std::vector<TensorView>& tensors_in,
                               const std::map<std::string, std::string>& metadata) {
  std::vector<const TensorView*> tensors;
  std::set<std::string> names;
  for (const TensorView& t : tensors_in) {
    if (t.name == "__metadata__") throw Error("safetensors", "a tensor cannot be named __metadata__");
    if (!names.insert(t.name).second) throw Error("safetensors", "duplicate tensor name '" + t.name + "'");
    for (int64_t d : t.shape)
      if (d < 0) throw Error("safetensors", "tensor '" + t.name + "': negative dimension in " + shape_str(t.shape));
    tensors.push_back(&t);
  }
  std::sort(tensors.begin(), tensors.end(), [](const TensorView* a, const TensorView* b) { return a->name < b->name; });
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (const auto& kv : metadata) m[kv.first] = kv.second;
    header["__metadata__"] = m;
  }
  uint64_t offset = 0;
  std::vector<uint64_t> sizes;
  for (const TensorView* t : tensors) {
    uint64_t numel = 1;
    for (int64_t d : t->shape) numel *= static_cast<uint64_t>(d);
    const uint64_t bytes = numel * dtype_size(t->dtype);
    if (bytes > 0 && t->data == nullptr) throw Error("safetensors", "tensor '" + t->name + "' has no data");
    header[t->name] = {{"dtype", dtype_name(t->dtype)}, {"shape", t->shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    sizes.push_back(bytes);
  }
  std::string text = header.dump();
  while ((8 + text.size()) % 8 != 0) text.push_back(' ');
  std::vector<uint8_t> out(8 + text.size() + offset);
  const uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(n >> (8 * i));
  std::memcpy(out.data() + 8, text.data(), text.size());
  uint8_t* dst = out.data() + 8 + text.size();
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (sizes[i]) std::memcpy(dst, tensors[i]->data, sizes[i]);
    dst += sizes[i];
  }
  return out;
}

void write(const std::string& path, const std::vector<TensorView>& tensors,
           const std::map<std::string, std::string>& metadata) {
  const std::vector<uint8_t> bytes = serialize(tensors, metadata);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail(path, std::string("cannot open for writing: ") + std::strerror(errno));
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) {
      std::remove(tmp.c_str());
      fail(path, "write failed (disk full?)");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    fail(path, std::string("cannot move temporary file into place: ") + std::strerror(errno));
  }
}

}  // namespace xattn::safetensors
