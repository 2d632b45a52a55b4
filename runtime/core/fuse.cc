#include "core/fuse.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/kernels/fuse_tile.h"

namespace lorarar {

const char* kernel_isa_name(KernelIsa isa) {
  switch (isa) {
    case KernelIsa::kAuto: return "auto";
    case KernelIsa::kScalar: return "scalar";
    case KernelIsa::kAvx2: return "avx2";
    case KernelIsa::kNeon: return "neon";
  }
  return "?";
}

bool kernel_isa_from_name(const char* name, KernelIsa* out) {
  for (KernelIsa isa : {KernelIsa::kAuto, KernelIsa::kScalar, KernelIsa::kAvx2, KernelIsa::kNeon}) {
    if (std::strcmp(name, kernel_isa_name(isa)) == 0) {
      *out = isa;
      return true;
    }
  }
  return false;
}

bool kernel_isa_available(KernelIsa isa) {
  switch (isa) {
    case KernelIsa::kAuto:
    case KernelIsa::kScalar: return true;
    case KernelIsa::kAvx2:
#if defined(__x86_64__) || defined(_M_X64)
      return kernels::cpu_has_avx2_fma_f16c();
#else
      return false;
#endif
    case KernelIsa::kNeon:
#if defined(__aarch64__)
      return true;
#else
      return false;
#endif
  }
  return false;
}

KernelIsa resolve_kernel_isa(KernelIsa requested) {
  if (requested != KernelIsa::kAuto) return requested;
  if (const char* env = std::getenv("LORARAR_KERNEL")) {
    KernelIsa forced;
    if (kernel_isa_from_name(env, &forced) && forced != KernelIsa::kAuto && kernel_isa_available(forced)) return forced;
  }
  if (kernel_isa_available(KernelIsa::kNeon)) return KernelIsa::kNeon;
  if (kernel_isa_available(KernelIsa::kAvx2)) return KernelIsa::kAvx2;
  return KernelIsa::kScalar;
}

namespace {

kernels::FuseTileFn tile_fn(KernelIsa isa) {
  switch (isa) {
#if defined(__x86_64__) || defined(_M_X64)
    case KernelIsa::kAvx2: return kernels::fuse_tile_avx2;
#endif
#if defined(__aarch64__)
    case KernelIsa::kNeon: return kernels::fuse_tile_neon;
#endif
    default: return kernels::fuse_tile_scalar;
  }
}

// Column tiles keep a packed A' tile (rank x kTileCols floats, 128 KB at rank
// 128) in L2; row chunks split big layers across threads. Both are multiples
// of the kernels' register tiles (16 columns, 6 rows).
constexpr int64_t kTileCols = 256;
constexpr int64_t kTileRows = 192;

}  // namespace

Status fuse_layer(const WeightView& w, const AdapterLayer& layer, float scale, const FuseOptions& options) {
  if (w.dtype != DType::kF32 && w.dtype != DType::kF16 && w.dtype != DType::kBF16) {
    return make_error(Error::kUnsupported, std::string("cannot fuse into ") + dtype_name(w.dtype) + " weights of " +
                                               json::quote(layer.module) + "; F32, F16 or BF16 only");
  }
  if (w.out_features != layer.out_features || w.in_features != layer.in_features) {
    return make_error(Error::kInvalidArgument,
                      "base weight of " + json::quote(layer.module) + " is " + std::to_string(w.out_features) + "x" +
                          std::to_string(w.in_features) + " (out x in), the adapter is " +
                          std::to_string(layer.out_features) + "x" + std::to_string(layer.in_features));
  }
  if (!std::isfinite(scale)) return make_error(Error::kInvalidArgument, "fuse scale is not finite");
  const int64_t rank = layer.rank();
  if (rank == 0 || scale == 0.0f) return Status::ok();
  const KernelIsa isa = resolve_kernel_isa(options.isa);
  if (!kernel_isa_available(isa)) {
    return make_error(Error::kUnsupported,
                      std::string("kernel ") + kernel_isa_name(isa) + " is not available on this CPU");
  }
  const kernels::FuseTileFn fn = tile_fn(isa);

  std::vector<float> bp(static_cast<size_t>(layer.out_features * rank));
  layer.pack_b(bp.data());
  if (scale != 1.0f) {
    for (float& v : bp) v *= scale;
  }
  const int64_t col_tiles = (layer.in_features + kTileCols - 1) / kTileCols;
  const int64_t row_tiles = (layer.out_features + kTileRows - 1) / kTileRows;
  const size_t esize = dtype_size(w.dtype);
  auto task = [&](size_t t) {
    const int64_t ct = static_cast<int64_t>(t) % col_tiles;
    const int64_t rt = static_cast<int64_t>(t) / col_tiles;
    const int64_t col0 = ct * kTileCols;
    const int64_t cols = std::min(kTileCols, layer.in_features - col0);
    const int64_t row0 = rt * kTileRows;
    const int64_t rows = std::min(kTileRows, layer.out_features - row0);
    thread_local std::vector<float> ap;
    ap.resize(static_cast<size_t>(rank * cols));
    layer.pack_a(0, rank, col0, cols, ap.data(), cols);
    auto* w0 = static_cast<unsigned char*>(w.data) + static_cast<size_t>(row0 * w.in_features + col0) * esize;
    fn(w0, w.dtype, w.in_features, bp.data() + row0 * rank, rank, ap.data(), cols, rows, cols);
  };
  const size_t tasks = static_cast<size_t>(col_tiles * row_tiles);
  if (options.pool) {
    options.pool->parallel_for(tasks, task);
  } else {
    for (size_t t = 0; t < tasks; ++t) task(t);
  }
  return Status::ok();
}

}  // namespace lorarar
