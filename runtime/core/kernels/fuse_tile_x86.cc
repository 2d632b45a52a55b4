// AVX2 + FMA + F16C kernel. Functions carry target attributes instead of the
// file being built with -mavx2, so nothing compiled here (inline helpers
// included) can leak AVX2 code into paths taken on older CPUs.
#if defined(__x86_64__) || defined(_M_X64)

#include <cpuid.h>
#include <immintrin.h>

#include "core/kernels/fuse_tile.h"

#define LORARAR_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace lorarar::kernels {

// CPUID directly: compilers disagree on which names __builtin_cpu_supports knows.
bool cpu_has_avx2_fma_f16c() {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
  const bool fma = c & (1u << 12), osxsave = c & (1u << 27), f16c = c & (1u << 29);
  if (!fma || !osxsave || !f16c) return false;
  unsigned xcr0_lo, xcr0_hi;
  __asm__("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  if ((xcr0_lo & 0x6u) != 0x6u) return false;  // the OS saves SSE and AVX state
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  return b & (1u << 5);  // AVX2
}

namespace {

template <DType T>
struct Io;

template <>
struct Io<DType::kF32> {
  static constexpr size_t kSize = 4;
  LORARAR_AVX2 static __m256 load(const unsigned char* p) { return _mm256_loadu_ps(reinterpret_cast<const float*>(p)); }
  LORARAR_AVX2 static void store(unsigned char* p, __m256 v) { _mm256_storeu_ps(reinterpret_cast<float*>(p), v); }
};

template <>
struct Io<DType::kF16> {
  static constexpr size_t kSize = 2;
  LORARAR_AVX2 static __m256 load(const unsigned char* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  LORARAR_AVX2 static void store(unsigned char* p, __m256 v) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
};

template <>
struct Io<DType::kBF16> {
  static constexpr size_t kSize = 2;
  LORARAR_AVX2 static __m256 load(const unsigned char* p) {
    const __m256i x = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(x, 16));
  }
  LORARAR_AVX2 static void store(unsigned char* p, __m256 v) {
    // Round to nearest even, then keep the high halves in order.
    __m256i x = _mm256_castps_si256(v);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(1));
    x = _mm256_add_epi32(x, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7FFF)));
    x = _mm256_srli_epi32(x, 16);
    const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(x, x), 0xD8);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_castsi256_si128(packed));
  }
};

// MR rows x (8 * NV) columns of W, accumulated in registers over the rank.
template <DType T, int MR, int NV>
LORARAR_AVX2 inline void block(unsigned char* w, size_t ldw_bytes, const float* bp, int64_t r, const float* ap,
                               int64_t lda) {
  using IoT = Io<T>;
  __m256 acc[MR][NV];
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m) {
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) acc[m][v] = IoT::load(w + m * ldw_bytes + v * 8 * IoT::kSize);
  }
  for (int64_t k = 0; k < r; ++k) {
    __m256 a[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) a[v] = _mm256_loadu_ps(ap + k * lda + v * 8);
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m) {
      const __m256 b = _mm256_broadcast_ss(bp + m * r + k);
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) acc[m][v] = _mm256_fmadd_ps(b, a[v], acc[m][v]);
    }
  }
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m) {
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) IoT::store(w + m * ldw_bytes + v * 8 * IoT::kSize, acc[m][v]);
  }
}

constexpr int kMR = 6;

template <DType T, int NV>
LORARAR_AVX2 void column_strip(unsigned char* w, size_t ldw_bytes, const float* bp, int64_t r, const float* ap,
                               int64_t lda, int64_t rows) {
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
LORARAR_AVX2 void tile(void* w, int64_t ldw, const float* bp, int64_t r, const float* ap, int64_t lda, int64_t rows,
                       int64_t cols) {
  auto* base = static_cast<unsigned char*>(w);
  const size_t ldw_bytes = static_cast<size_t>(ldw) * Io<T>::kSize;
  int64_t j = 0;
  for (; j + 16 <= cols; j += 16) column_strip<T, 2>(base + j * Io<T>::kSize, ldw_bytes, bp, r, ap + j, lda, rows);
  for (; j + 8 <= cols; j += 8) column_strip<T, 1>(base + j * Io<T>::kSize, ldw_bytes, bp, r, ap + j, lda, rows);
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

void fuse_tile_avx2(void* w, DType wt, int64_t ldw, const float* bp, int64_t r, const float* ap, int64_t lda,
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
