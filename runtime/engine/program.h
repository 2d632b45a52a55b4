// One ExecuTorch program of a bundle (text encoder, UNet, VAE decoder,
// hypernetwork), memory-mapped, with its methods loaded. Each engine context
// owns its own ProgramRunner: ExecuTorch methods hold their activations in
// planned memory and must not run concurrently. XNNPACK's packed weights are
// shared by every runner of the same program (its weight cache), so a second
// context costs activations, not weights.
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

// Planned activation memory shared by programs that never run at the same time
// (one context's): each buffer is sized for the largest method, not the sum.
class PlannedMemory {
 public:
  // Grows buffer i to at least sizes[i]. Only before allocate().
  void reserve(const std::vector<size_t>& sizes);
  // Allocates the buffers; the methods loaded into them keep pointers, so
  // this object must outlive them and never grow again.
  void allocate();

 private:
  friend class ProgramRunner;
  std::vector<size_t> sizes_;
  std::vector<std::vector<uint8_t>> buffers_;
  std::vector<uint8_t*> aligned_;
};

// How a program's XNNPACK delegates get their scratch memory.
enum class Workspace {
  // One workspace for every program loaded this way in the process: the least
  // memory; delegate calls from different contexts take turns.
  kShared,
  // One workspace per program instance: contexts run truly in parallel.
  kPerProgram,
};

class ProgramRunner {
 public:
  ~ProgramRunner();
  ProgramRunner(const ProgramRunner&) = delete;
  ProgramRunner& operator=(const ProgramRunner&) = delete;

  // Loads `pte` (and its external weights `ptd`, if not empty) and the given
  // methods, with their own planned memory. Errors name the file.
  static Result<std::unique_ptr<ProgramRunner>> open(const std::string& pte, const std::string& ptd,
                                                     const std::vector<std::string>& methods,
                                                     Workspace workspace = Workspace::kShared);

  // Loads the program only: load_methods() follows, once the caller has sized
  // a PlannedMemory with planned_sizes() of every program that shares it.
  // `packed_cache`: a file where XNNPACK keeps this program's packed weights
  // (written on the first load, memory-mapped on the next ones: no repacking,
  // and the weights are clean file pages the OS may evict); empty: packed on
  // the heap at every load.
  static Result<std::unique_ptr<ProgramRunner>> open_program(const std::string& pte, const std::string& ptd,
                                                             Workspace workspace = Workspace::kShared,
                                                             const std::string& packed_cache = "");
  // Bytes of each planned buffer the given methods need (the max over them).
  Result<std::vector<size_t>> planned_sizes(const std::vector<std::string>& methods) const;
  // Loads the methods into `planned` (allocated), or into their own memory
  // when it is null.
  Status load_methods(const std::vector<std::string>& methods, PlannedMemory* planned);

  // Runs `method`; copies output i into outputs[i] (sizes must match).
  Status run(const std::string& method, const std::vector<TensorArg>& inputs, const std::vector<OutputArg>& outputs);

  // Runs `method` and returns copies of its float32 outputs, whatever their shapes.
  Result<std::vector<OwnedTensor>> run(const std::string& method, const std::vector<TensorArg>& inputs);

  // Names of the methods the program holds.
  std::vector<std::string> method_names() const;

  // Shape and kind of each input of `method` (float32 or int64; others are an error).
  struct InputSpec {
    std::vector<int32_t> shape;
    ScalarKind kind = ScalarKind::kFloat32;
  };
  Result<std::vector<InputSpec>> input_specs(const std::string& method) const;

 private:
  ProgramRunner() = default;
  struct Impl;
  // Runs and hands each float32 output (data, element count, shape) to `take`.
  template <typename Take>
  Status execute(const std::string& method, const std::vector<TensorArg>& inputs, size_t expected_outputs, Take take);
  std::unique_ptr<Impl> impl_;
};

}  // namespace lorarar
