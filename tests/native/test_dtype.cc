#include <cstring>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "core/kernels/convert.h"
#include "harness.h"

using namespace lorarar;

#if defined(__aarch64__)
using NativeHalf = __fp16;  // AArch64's IEEE half, converted by fcvt
#else
using NativeHalf = _Float16;
#endif

// The compiler's half conversions (hardware or libgcc, round to nearest
// even) are the oracle for the hand-written ones.
TEST(f16_conversions_match_the_compiler_for_every_half) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const uint16_t bits = static_cast<uint16_t>(h);
    NativeHalf native;
    std::memcpy(&native, &bits, 2);
    const float want = static_cast<float>(native);
    const float got = f16_to_f32(bits);
    if (std::isnan(want)) {
      CHECK(std::isnan(got));
    } else {
      CHECK_EQ(std::memcmp(&want, &got, 4), 0);
      CHECK_EQ(f32_to_f16(got), bits);
    }
  }
}

TEST(f32_to_f16_rounds_like_the_compiler) {
  std::mt19937 rng(7);
  for (int i = 0; i < 2000000; ++i) {
    uint32_t bits = rng();
    float f;
    std::memcpy(&f, &bits, 4);
    if (std::isnan(f)) continue;
    const NativeHalf native = static_cast<NativeHalf>(f);
    uint16_t want;
    std::memcpy(&want, &native, 2);
    const uint16_t got = f32_to_f16(f);
    if (got != want) {
      std::fprintf(stderr, "  f32 %08x: got %04x want %04x\n", bits, got, want);
      CHECK(false);
      return;
    }
  }
}

TEST(bf16_rounds_to_nearest_even) {
  CHECK_EQ(f32_to_bf16(1.0f), uint16_t(0x3F80));
  uint32_t halfway = 0x3F808000u;  // exactly between 0x3F80 and 0x3F81: ties to even
  float f;
  std::memcpy(&f, &halfway, 4);
  CHECK_EQ(f32_to_bf16(f), uint16_t(0x3F80));
  halfway = 0x3F818000u;
  std::memcpy(&f, &halfway, 4);
  CHECK_EQ(f32_to_bf16(f), uint16_t(0x3F82));
  CHECK(std::isnan(bf16_to_f32(f32_to_bf16(std::nanf("")))));
  CHECK_EQ(bf16_to_f32(0xC040), -3.0f);
}

TEST(bulk_conversion_matches_scalar_loads_at_any_alignment) {
  std::mt19937 rng(3);
  std::normal_distribution<float> dist(0.0f, 10.0f);
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16}) {
    for (size_t n : {size_t(0), size_t(1), size_t(7), size_t(8), size_t(9), size_t(37), size_t(1000)}) {
      std::vector<uint8_t> buf(n * dtype_size(t) + 3);
      uint8_t* src = buf.data() + 1;  // unaligned on purpose
      for (size_t i = 0; i < n; ++i) store_float(src, t, i, dist(rng));
      std::vector<float> out(n);
      kernels::convert_to_f32(src, t, n, 0.5f, out.data());
      for (size_t i = 0; i < n; ++i) CHECK_EQ(out[i], 0.5f * load_float(src, t, i));
      CHECK_EQ(kernels::first_non_finite(src, t, n), n);
      if (n > 5) {
        store_float(src, t, 5, INFINITY);
        CHECK_EQ(kernels::first_non_finite(src, t, n), size_t(5));
      }
    }
  }
}
