// Fusing an adapter into base weights, W += scale * B' A', for backends that
// need fused weights (and `lorarar fuse`). W is read and written once: the
// kernel walks W in register tiles, with A' packed per cache-sized column
// tile (column coefficients and scales applied while packing) and B' packed
// once per layer. ISA paths: AVX2+FMA+F16C, NEON, and a portable fallback,
// picked at run time.
#pragma once

#include <cstdint>

#include "core/adapter.h"
#include "core/dtype.h"
#include "core/result.h"
#include "core/thread_pool.h"

namespace lorarar {

enum class KernelIsa { kAuto, kScalar, kAvx2, kNeon };
const char* kernel_isa_name(KernelIsa isa);
bool kernel_isa_from_name(const char* name, KernelIsa* out);
bool kernel_isa_available(KernelIsa isa);
// kAuto resolved: the best this CPU runs, unless LORARAR_KERNEL names another.
KernelIsa resolve_kernel_isa(KernelIsa requested);

// A row-major (out_features x in_features) weight in F32, F16 or BF16
// (a 1x1 convolution's (out, in, 1, 1) weight has the same layout).
struct WeightView {
  void* data = nullptr;
  DType dtype = DType::kF32;
  int64_t out_features = 0;
  int64_t in_features = 0;
};

struct FuseOptions {
  KernelIsa isa = KernelIsa::kAuto;
  ThreadPool* pool = nullptr;  // nullptr: the calling thread alone
};

Status fuse_layer(const WeightView& w, const AdapterLayer& layer, float scale, const FuseOptions& options = {});

}  // namespace lorarar
