// NEON kernel (AArch64: NEON and fp16 conversion are baseline).
#if defined(__aarch64__)

#include <arm_neon.h>

#include "core/kernels/fuse_tile.h"

namespace lorarar::kernels {

namespace {

template <DType T>
struct Io;

template <>
struct Io<DType::kF32> {
  static constexpr size_t kSize = 4;
  static float32x4_t load(const unsigned char* p) { return vld1q_f32(reinterpret_cast<const float*>(p)); }
  static void store(unsigned char* p, float32x4_t v) { vst1q_f32(reinterpret_cast<float*>(p), v); }
};

template <>
struct Io<DType::kF16> {
  static constexpr size_t kSize = 2;
  static float32x4_t load(const unsigned char* p) {
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(reinterpret_cast<const uint16_t*>(p))));
  }
  static void store(unsigned char* p, float32x4_t v) {
    vst1_u16(reinterpret_cast<uint16_t*>(p), vreinterpret_u16_f16(vcvt_f16_f32(v)));
  }
};

template <>
struct Io<DType::kBF16> {
  static constexpr size_t kSize = 2;
  static float32x4_t load(const unsigned char* p) {
    return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(reinterpret_cast<const uint16_t*>(p)), 16));
  }
  static void store(unsigned char* p, float32x4_t v) {
    uint32x4_t x = vreinterpretq_u32_f32(v);
    const uint32x4_t lsb = vandq_u32(vshrq_n_u32(x, 16), vdupq_n_u32(1));
    x = vaddq_u32(x, vaddq_u32(lsb, vdupq_n_u32(0x7FFF)));
    vst1_u16(reinterpret_cast<uint16_t*>(p), vshrn_n_u32(x, 16));
  }
};

// MR rows x (4 * NV) columns, accumulated in registers over the rank.
template <DType T, int MR, int NV>
inline void block(unsigned char* w, size_t ldw_bytes, const float* bp, int64_t r, const float* ap, int64_t lda) {
  using IoT = Io<T>;
  float32x4_t acc[MR][NV];
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[m][v] = IoT::load(w + m * ldw_bytes + v * 4 * IoT::kSize);
  }
  for (int64_t k = 0; k < r; ++k) {
    float32x4_t a[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) a[v] = vld1q_f32(ap + k * lda + v * 4);
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m) {
      const float b = bp[m * r + k];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[m][v] = vfmaq_n_f32(acc[m][v], a[v], b);
    }
  }
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) IoT::store(w + m * ldw_bytes + v * 4 * IoT::kSize, acc[m][v]);
  }
}

constexpr int kMR = 6;

template <DType T, int NV>
void column_strip(unsigned char* w, size_t ldw_bytes, const float* bp, int64_t r, const float* ap, int64_t lda,
                  int64_t rows) {
  int64_t i = 0;
  for (; i + kMR <= rows; i += kMR) block<T, kMR, NV>(w + i * ldw_bytes, ldw_bytes, bp + i * r, r, ap, lda);
  unsigned char* wi = w + i * ldw_bytes;
  const float* bi = bp + i * r;
  switch (rows - i) {
    case 5: block<T, 5, NV>(wi, ldw_bytes, bi, r, ap, lda); break;
    case 4: block<T, 4, NV>(wi, ldw_bytes, bi, r, ap, lda); break;
    case 3: block<T, 3, NV>(wi, ldw_bytes, bi, r, ap, lda); break;
    case 2: block<T, 2, NV>(wi, ldw_bytes, bi, r, ap, lda); break;
    case 1: block<T, 1, NV>(wi, ldw_bytes, bi, r, ap, lda); break;
    default: break;
  }
}

template <DType T>
void tile(void* w, int64_t ldw, const float* bp, int64_t r, const float* ap, int64_t lda, int64_t rows, int64_t cols) {
  auto* base = static_cast<unsigned char*>(w);
  const size_t ldw_bytes = static_cast<size_t>(ldw) * Io<T>::kSize;
  int64_t j = 0;
  for (; j + 16 <= cols; j += 16) column_strip<T, 4>(base + j * Io<T>::kSize, ldw_bytes, bp, r, ap + j, lda, rows);
  for (; j + 4 <= cols; j += 4) column_strip<T, 1>(base + j * Io<T>::kSize, ldw_bytes, bp, r, ap + j, lda, rows);
  if (j < cols) {
    for (int64_t i = 0; i < rows; ++i) {
      unsigned char* row = base + i * ldw_bytes;
      for (int64_t jj = j; jj < cols; ++jj) {
        float acc = load_float(row, T, static_cast<size_t>(jj));
        for (int64_t k = 0; k < r; ++k) acc = __builtin_fmaf(bp[i * r + k], ap[k * lda + jj], acc);
        store_float(row, T, static_cast<size_t>(jj), acc);
      }
    }
  }
}

}  // namespace

void fuse_tile_neon(void* w, DType wt, int64_t ldw, const float* bp, int64_t r, const float* ap, int64_t lda,
                    int64_t rows, int64_t cols) {
  switch (wt) {
    case DType::kF32: tile<DType::kF32>(w, ldw, bp, r, ap, lda, rows, cols); break;
    case DType::kF16: tile<DType::kF16>(w, ldw, bp, r, ap, lda, rows, cols); break;
    case DType::kBF16: tile<DType::kBF16>(w, ldw, bp, r, ap, lda, rows, cols); break;
    default: fuse_tile_scalar(w, wt, ldw, bp, r, ap, lda, rows, cols);
  }
}

}  // namespace lorarar::kernels

#endif
