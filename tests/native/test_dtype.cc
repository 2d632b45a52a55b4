#include <cstring>
#include <random>

#include "core/dtype.h"
#include "harness.h"

using namespace lorarar;

// The compiler's _Float16 conversions (hardware or libgcc, round to nearest
// even) are the oracle for the hand-written ones.
TEST(f16_conversions_match_the_compiler_for_every_half) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const uint16_t bits = static_cast<uint16_t>(h);
    _Float16 native;
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
    const _Float16 native = static_cast<_Float16>(f);
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
