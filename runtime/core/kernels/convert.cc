#include "core/kernels/convert.h"

#include <cstring>

#include "core/kernels/fuse_tile.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define LORARAR_AVX2 __attribute__((target("avx2,fma,f16c")))
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

namespace lorarar::kernels {

namespace {

void convert_scalar(const uint8_t* src, DType dtype, size_t n, float scale, float* dst) {
  for (size_t i = 0; i < n; ++i) dst[i] = scale * load_float(src, dtype, i);
}

#if defined(__x86_64__) || defined(_M_X64)
LORARAR_AVX2 void convert_avx2(const uint8_t* src, DType dtype, size_t n, float scale, float* dst) {
  const __m256 s = _mm256_set1_ps(scale);
  size_t i = 0;
  switch (dtype) {
    case DType::kF32:
      for (; i + 8 <= n; i += 8) {
        _mm256_storeu_ps(dst + i, _mm256_mul_ps(s, _mm256_loadu_ps(reinterpret_cast<const float*>(src) + i)));
      }
      break;
    case DType::kF16:
      for (; i + 8 <= n; i += 8) {
        const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * i));
        _mm256_storeu_ps(dst + i, _mm256_mul_ps(s, _mm256_cvtph_ps(h)));
      }
      break;
    case DType::kBF16:
      for (; i + 8 <= n; i += 8) {
        const __m256i x = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * i)));
        _mm256_storeu_ps(dst + i, _mm256_mul_ps(s, _mm256_castsi256_ps(_mm256_slli_epi32(x, 16))));
      }
      break;
    default: break;
  }
  if (i < n) convert_scalar(src + i * dtype_size(dtype), dtype, n - i, scale, dst + i);
}
#endif

#if defined(__aarch64__)
void convert_neon(const uint8_t* src, DType dtype, size_t n, float scale, float* dst) {
  size_t i = 0;
  switch (dtype) {
    case DType::kF32:
      for (; i + 4 <= n; i += 4) {
        vst1q_f32(dst + i, vmulq_n_f32(vld1q_f32(reinterpret_cast<const float*>(src) + i), scale));
      }
      break;
    case DType::kF16:
      for (; i + 4 <= n; i += 4) {
        const float16x4_t h = vreinterpret_f16_u16(vld1_u16(reinterpret_cast<const uint16_t*>(src + 2 * i)));
        vst1q_f32(dst + i, vmulq_n_f32(vcvt_f32_f16(h), scale));
      }
      break;
    case DType::kBF16:
      for (; i + 4 <= n; i += 4) {
        const uint32x4_t x = vshll_n_u16(vld1_u16(reinterpret_cast<const uint16_t*>(src + 2 * i)), 16);
        vst1q_f32(dst + i, vmulq_n_f32(vreinterpretq_f32_u32(x), scale));
      }
      break;
    default: break;
  }
  if (i < n) convert_scalar(src + i * dtype_size(dtype), dtype, n - i, scale, dst + i);
}
#endif

using ConvertFn = void (*)(const uint8_t*, DType, size_t, float, float*);

ConvertFn pick_convert() {
#if defined(__x86_64__) || defined(_M_X64)
  if (cpu_has_avx2_fma_f16c()) return convert_avx2;
#elif defined(__aarch64__)
  return convert_neon;
#endif
  return convert_scalar;
}

// Non-finite floats have an all-ones exponent. Words of 64 bits test several
// elements per step; the loop has no branches, so compilers vectorise it.
template <typename Bits>
size_t first_non_finite_bits(const uint8_t* src, size_t n, Bits exp_mask) {
  constexpr size_t kBlock = 4096;
  for (size_t start = 0; start < n; start += kBlock) {
    const size_t count = start + kBlock < n ? kBlock : n - start;
    const uint8_t* p = src + start * sizeof(Bits);
    Bits any = 0;
    for (size_t i = 0; i < count; ++i) {
      Bits v;
      std::memcpy(&v, p + i * sizeof(Bits), sizeof(Bits));
      any |= static_cast<Bits>(((v & exp_mask) == exp_mask) ? 1 : 0);
    }
    if (!any) continue;
    for (size_t i = 0; i < count; ++i) {
      Bits v;
      std::memcpy(&v, p + i * sizeof(Bits), sizeof(Bits));
      if ((v & exp_mask) == exp_mask) return start + i;
    }
  }
  return n;
}

}  // namespace

void convert_to_f32(const uint8_t* src, DType dtype, size_t n, float scale, float* dst) {
  static const ConvertFn fn = pick_convert();
  if (dtype == DType::kF32 && scale == 1.0f) {
    std::memcpy(dst, src, n * sizeof(float));
    return;
  }
  fn(src, dtype, n, scale, dst);
}

size_t first_non_finite(const uint8_t* src, DType dtype, size_t n) {
  switch (dtype) {
    case DType::kF32: return first_non_finite_bits<uint32_t>(src, n, 0x7F800000u);
    case DType::kF16: return first_non_finite_bits<uint16_t>(src, n, 0x7C00u);
    case DType::kBF16: return first_non_finite_bits<uint16_t>(src, n, 0x7F80u);
    default: return n;
  }
}

}  // namespace lorarar::kernels
