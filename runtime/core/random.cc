// Compiled with -ffp-contract=off (runtime/CMakeLists.txt): a fused
// multiply-add would round differently on ARM and x86 and break the
// cross-platform contract in random.h.
#include "core/random.h"

#include <algorithm>
#include <cmath>
#include <utility>

namespace lorarar {

namespace {

constexpr uint32_t kMul0 = 0xD2511F53u;
constexpr uint32_t kMul1 = 0xCD9E8D57u;
constexpr uint32_t kWeyl0 = 0x9E3779B9u;
constexpr uint32_t kWeyl1 = 0xBB67AE85u;

// ln x for x in (0, 1], relative error ~1e-16: x = m 2^e with m in
// [sqrt(1/2), sqrt(2)), ln m = 2 atanh(s), s = (m - 1) / (m + 1), |s| < 0.172.
double log_portable(double x) {
  int e = 0;
  double m = std::frexp(x, &e);  // exact
  if (m < 0.70710678118654752440) {
    m *= 2.0;
    --e;
  }
  const double f = m - 1.0;  // exact (Sterbenz)
  const double s = f / (2.0 + f);
  const double s2 = s * s;
  double tail = 0.0;  // s^2/3 + s^4/5 + ... + s^24/25; the next term is below 1e-19
  for (int k = 25; k >= 3; k -= 2) tail = (tail + 1.0 / k) * s2;
  // ln 2 split so that e * kLn2Hi is exact (fdlibm's constants).
  constexpr double kLn2Hi = 6.93147180369123816490e-01;
  constexpr double kLn2Lo = 1.90821492927058770002e-10;
  return e * kLn2Hi + (e * kLn2Lo + (2.0 * s + 2.0 * s * tail));
}

// sin and cos of 2 pi u for u in [0, 1): the quadrant comes from u exactly,
// the rest is a Taylor series on [0, pi/4].
void sincos_2pi_portable(double u, double* sin_out, double* cos_out) {
  const double u4 = u * 4.0;  // exact
  const int quadrant = static_cast<int>(u4);
  double r = u4 - quadrant;  // exact, in [0, 1)
  const bool complement = r > 0.5;
  if (complement) r = 1.0 - r;  // exact
  constexpr double kHalfPi = 1.57079632679489661923;
  const double phi = r * kHalfPi;
  const double p2 = phi * phi;
  double ts = 1.0, tc = 1.0;  // nested Horner forms of sin(phi)/phi and cos(phi)
  for (int k = 23; k >= 3; k -= 2) ts = 1.0 - p2 / (k * (k - 1)) * ts;
  for (int k = 22; k >= 2; k -= 2) tc = 1.0 - p2 / (k * (k - 1)) * tc;
  double s = phi * ts, c = tc;
  if (complement) std::swap(s, c);  // sin(pi/2 - x) = cos x
  switch (quadrant) {
    case 0: *sin_out = s, *cos_out = c; break;
    case 1: *sin_out = c, *cos_out = -s; break;
    case 2: *sin_out = -s, *cos_out = -c; break;
    default: *sin_out = -c, *cos_out = s; break;
  }
}

// The four normals of block `block`.
void normal_block(uint64_t seed, uint64_t block, float out[4]) {
  const auto x = philox4x32_10({static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32), 0u, 0u},
                               {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)});
  constexpr double kInv2Pow32 = 1.0 / 4294967296.0;
  for (int p = 0; p < 2; ++p) {
    const double u1 = (static_cast<double>(x[2 * p]) + 1.0) * kInv2Pow32;  // (0, 1]: ln u1 is finite
    const double u2 = static_cast<double>(x[2 * p + 1]) * kInv2Pow32;      // [0, 1)
    const double radius = std::sqrt(-2.0 * log_portable(u1));
    double s = 0.0, c = 0.0;
    sincos_2pi_portable(u2, &s, &c);
    out[2 * p] = static_cast<float>(radius * c);
    out[2 * p + 1] = static_cast<float>(radius * s);
  }
}

}  // namespace

std::array<uint32_t, 4> philox4x32_10(std::array<uint32_t, 4> c, std::array<uint32_t, 2> key) {
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = static_cast<uint64_t>(kMul0) * c[0];
    const uint64_t p1 = static_cast<uint64_t>(kMul1) * c[2];
    c = {static_cast<uint32_t>(p1 >> 32) ^ c[1] ^ key[0], static_cast<uint32_t>(p1),
         static_cast<uint32_t>(p0 >> 32) ^ c[3] ^ key[1], static_cast<uint32_t>(p0)};
    key[0] += kWeyl0;
    key[1] += kWeyl1;
  }
  return c;
}

void GaussianNoise::fill(float* out, size_t n) {
  float block[4];
  while (n > 0) {
    normal_block(seed_, offset_ >> 2, block);
    const size_t first = static_cast<size_t>(offset_ & 3);
    const size_t take = std::min<size_t>(4 - first, n);
    for (size_t i = 0; i < take; ++i) out[i] = block[first + i];
    out += take;
    n -= take;
    offset_ += take;
  }
}

float GaussianNoise::at(uint64_t seed, uint64_t index) {
  float block[4];
  normal_block(seed, index >> 2, block);
  return block[index & 3];
}

}  // namespace lorarar
