// Deterministic Gaussian noise for the denoising loop (initial latents, the
// noise LCM and DDIM with eta > 0 draw each step).
//
// Stream definition (the contract: the same seed gives the same bits on every
// platform and compiler):
//   - Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as
//     1, 2, 3", SC'11) with key = {seed & 0xffffffff, seed >> 32} and counter
//     = {b & 0xffffffff, b >> 32, 0, 0} for block b = 0, 1, 2, ...
//   - each block's four words (x0, x1, x2, x3) give two Box-Muller pairs,
//     (x0, x1) and (x2, x3): with u1 = (a + 1) / 2^32 in (0, 1] and
//     u2 = b / 2^32 in [0, 1), r = sqrt(-2 ln u1), normal 4b + 2p is
//     r cos(2 pi u2) and normal 4b + 2p + 1 is r sin(2 pi u2), computed in
//     double and rounded to float.
// ln, cos and sin are evaluated with series that use only +, -, *, / and sqrt
// (exactly rounded in IEEE 754), in a file compiled without FMA contraction,
// so no platform libm enters the result. The values are not torch's: parity
// tests pass noise explicitly.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace lorarar {

// One Philox4x32-10 block.
std::array<uint32_t, 4> philox4x32_10(std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key);

// Standard normal floats, a counter-based stream: normal i depends on (seed, i)
// alone, so a caller can seek, split work or resume without replaying.
class GaussianNoise {
 public:
  explicit GaussianNoise(uint64_t seed, uint64_t offset = 0) : seed_(seed), offset_(offset) {}

  // Writes the next n normals and advances the offset by n.
  void fill(float* out, size_t n);

  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }  // normals drawn so far
  void seek(uint64_t offset) { offset_ = offset; }

  // Normal `index` of the stream for `seed`.
  static float at(uint64_t seed, uint64_t index);

 private:
  uint64_t seed_;
  uint64_t offset_;
};

}  // namespace lorarar
