// SHA-256 (FIPS 180-4), for verifying bundle files against their manifest.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace lorarar {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t size);
  std::array<uint8_t, 32> finish();
  // Lowercase hex of finish().
  std::string hex();

 private:
  void block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buffer_[64];
  size_t buffered_ = 0;
  uint64_t length_ = 0;
};

std::string sha256_hex(const void* data, size_t size);

}  // namespace lorarar
