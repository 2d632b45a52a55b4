// The safetensors format (https://github.com/huggingface/safetensors): an
// 8-byte little-endian header length N, N bytes of JSON naming each tensor's
// dtype, shape and [begin, end) byte range in the data section that follows.
// This reader works on a byte span the caller owns (an mmap, a buffer) and
// copies nothing: tensors are views into it. Every structural property is
// checked, since the bytes come from users' downloads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/dtype.h"
#include "core/result.h"

namespace lorarar {

struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // may be unaligned
  size_t nbytes = 0;

  size_t numel() const {
    size_t n = 1;
    for (int64_t d : shape) n *= static_cast<size_t>(d);
    return n;
  }
  float at(size_t i) const { return load_float(data, dtype, i); }
  std::string shape_string() const;
};

class SafetensorsView {
 public:
  // Largest header accepted: far above any real file (SDXL's is ~200 KB),
  // small enough that a hostile length cannot exhaust memory.
  static constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

  static Result<SafetensorsView> parse(const uint8_t* data, size_t size);

  const std::vector<TensorView>& tensors() const { return tensors_; }
  const TensorView* find(std::string_view name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Byte offset of the data section from the start of the file.
  size_t data_offset() const { return data_offset_; }

 private:
  std::vector<TensorView> tensors_;
  std::unordered_map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
  size_t data_offset_ = 0;
};

// Layout of a file to write: the header bytes (length prefix included, padded
// with spaces to 8-byte alignment as the reference writer does) and each
// tensor's offset within the data section.
struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
};
struct SafetensorsLayout {
  std::string header;           // prefix + JSON + padding
  std::vector<size_t> offsets;  // per entry, relative to the data section
  std::vector<size_t> sizes;    // bytes per entry
  size_t data_bytes = 0;
};
SafetensorsLayout safetensors_layout(const std::vector<SafetensorsEntry>& entries,
                                     const std::map<std::string, std::string>& metadata);

}  // namespace lorarar
