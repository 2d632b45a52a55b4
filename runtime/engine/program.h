// One ExecuTorch program of a bundle (text encoder, UNet, VAE decoder,
// hypernetwork), memory-mapped, with its methods loaded. Each engine context
// owns its own ProgramRunner: ExecuTorch methods hold their activations in
// per-instance planned memory and must not run concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/result.h"

namespace lorarar {

enum class ScalarKind { kFloat32, kInt64 };

// A caller-owned input buffer, passed to the program without a copy.
struct TensorArg {
  const void* data = nullptr;
  std::vector<int32_t> shape;
  ScalarKind kind = ScalarKind::kFloat32;
};

// A caller-owned float32 output buffer of `count` elements.
struct OutputArg {
  float* data = nullptr;
  size_t count = 0;
};

// An output copied out of the program's memory.
struct OwnedTensor {
  std::vector<float> data;
  std::vector<int64_t> shape;
};

class ProgramRunner {
 public:
  ~ProgramRunner();
  ProgramRunner(const ProgramRunner&) = delete;
  ProgramRunner& operator=(const ProgramRunner&) = delete;

  // Loads `pte` (and its external weights `ptd`, if not empty) and the given
  // methods. Errors name the file.
  static Result<std::unique_ptr<ProgramRunner>> open(const std::string& pte, const std::string& ptd,
                                                     const std::vector<std::string>& methods);

  // Runs `method`; copies output i into outputs[i] (sizes must match).
  Status run(const std::string& method, const std::vector<TensorArg>& inputs, const std::vector<OutputArg>& outputs);

  // Runs `method` and returns copies of its float32 outputs, whatever their shapes.
  Result<std::vector<OwnedTensor>> run(const std::string& method, const std::vector<TensorArg>& inputs);

  // Names of the methods the program holds.
  std::vector<std::string> method_names() const;

 private:
  ProgramRunner() = default;
  struct Impl;
  // Runs and hands each float32 output (data, element count, shape) to `take`.
  template <typename Take>
  Status execute(const std::string& method, const std::vector<TensorArg>& inputs, size_t expected_outputs, Take take);
  std::unique_ptr<Impl> impl_;
};

}  // namespace lorarar
