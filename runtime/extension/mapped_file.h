// Read-only memory maps of the files the engine reads (LoRAs, base weights,
// bundles): pages load on first touch and are shared with the page cache, so
// parsing a LoRA copies nothing until a consumer converts a factor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "core/result.h"

namespace lorarar {

class MappedFile {
 public:
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  // Errors carry no path; callers prefix it.
  static Result<std::shared_ptr<MappedFile>> open(const std::string& path);
  // A private copy of `size` bytes, for data that never was a file (an app's
  // asset or a download): the caller may free its buffer once this returns.
  static Result<std::shared_ptr<MappedFile>> copy_of(const void* data, size_t size);

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  MappedFile() = default;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::unique_ptr<uint8_t[]> owned_;  // set by copy_of; otherwise data_ is a map
};

// Reads a whole small file (configs, manifests).
Result<std::string> read_text_file(const std::string& path);

bool is_directory(const std::string& path);
bool file_exists(const std::string& path);
std::string join_path(const std::string& a, const std::string& b);

// Writes `path` atomically: the bytes go to a temporary file beside it that is
// renamed over `path` only once complete, so a crash leaves the old file or
// none, never a partial one that looks complete.
class AtomicFileWriter {
 public:
  ~AtomicFileWriter();  // discards the temporary file unless commit() succeeded
  static Result<std::unique_ptr<AtomicFileWriter>> create(const std::string& path, size_t size);
  uint8_t* data() { return data_; }  // writable map of `size` bytes
  Status commit();

 private:
  AtomicFileWriter() = default;
  std::string path_, tmp_path_;
  int fd_ = -1;
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
  bool committed_ = false;
};

}  // namespace lorarar
