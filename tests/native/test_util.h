// Builders for the files the tests feed the engine.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/safetensors.h"

namespace lorarar_test {

struct TestTensor {
  std::string name;
  lorarar::DType dtype = lorarar::DType::kF32;
  std::vector<int64_t> shape;
  std::vector<float> values;
};

inline std::vector<uint8_t> make_safetensors(const std::vector<TestTensor>& tensors,
                                             const std::map<std::string, std::string>& metadata = {}) {
  std::vector<lorarar::SafetensorsEntry> entries;
  for (const auto& t : tensors) entries.push_back({t.name, t.dtype, t.shape});
  const auto layout = lorarar::safetensors_layout(entries, metadata);
  std::vector<uint8_t> bytes(layout.header.begin(), layout.header.end());
  bytes.resize(layout.header.size() + layout.data_bytes);
  for (size_t i = 0; i < tensors.size(); ++i) {
    uint8_t* dst = bytes.data() + layout.header.size() + layout.offsets[i];
    for (size_t j = 0; j < tensors[i].values.size(); ++j) {
      lorarar::store_float(dst, tensors[i].dtype, j, tensors[i].values[j]);
    }
  }
  return bytes;
}

inline std::vector<float> random_values(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// A LoRA layer's two factors in a given naming: down (r x in), up (out x r).
inline void add_lora_layer(std::vector<TestTensor>* tensors, const std::string& down_name, const std::string& up_name,
                           int64_t r, int64_t in, int64_t out, uint32_t seed,
                           lorarar::DType dtype = lorarar::DType::kF32) {
  tensors->push_back({down_name, dtype, {r, in}, random_values(static_cast<size_t>(r * in), seed, 0.1f)});
  tensors->push_back({up_name, dtype, {out, r}, random_values(static_cast<size_t>(out * r), seed + 1, 0.1f)});
}

// A fresh temporary directory, removed by the OS's tmp cleaning (tests write
// only small files).
std::string make_temp_dir();
void write_file(const std::string& path, const std::vector<uint8_t>& bytes);
void write_file(const std::string& path, const std::string& text);
std::string read_file(const std::string& path);

}  // namespace lorarar_test
