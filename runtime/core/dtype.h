// Element types of tensors in the files the engine reads, and the scalar
// conversions between the float formats LoRAs and base weights come in.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace lorarar {

enum class DType : uint8_t { kF64, kF32, kF16, kBF16, kI64, kI32, kI16, kI8, kU8, kBool, kF8E4M3, kF8E5M2 };

// safetensors spelling ("F32", "BF16", ...).
const char* dtype_name(DType t);
bool dtype_from_name(std::string_view name, DType* out);
size_t dtype_size(DType t);
inline bool dtype_is_float(DType t) {
  return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16 || t == DType::kF64;
}

inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t mant = h & 0x3FFu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalise
      exp = 127 - 15 + 1;
      while ((mant & 0x400u) == 0) {
        mant <<= 1;
        --exp;
      }
      mant &= 0x3FFu;
      bits = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 0x1F) {
    bits = sign | 0x7F800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

// Round to nearest even, as the hardware conversions (F16C, NEON fcvt) do.
inline uint16_t f32_to_f16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof(x));
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t abs = x & 0x7FFFFFFFu;
  if (abs >= 0x7F800000u) {  // Inf or NaN (keep NaN quiet)
    return static_cast<uint16_t>(sign | 0x7C00u | (abs > 0x7F800000u ? 0x200u : 0u));
  }
  if (abs >= 0x477FF000u) return static_cast<uint16_t>(sign | 0x7C00u);  // rounds to Inf
  if (abs < 0x38800000u) {                                               // result is subnormal or zero
    if (abs < 0x33000000u) return static_cast<uint16_t>(sign);
    const uint32_t exp = abs >> 23;
    const uint32_t mant = (abs & 0x7FFFFFu) | 0x800000u;
    const uint32_t shift = 126 - exp;  // 14..24
    uint32_t half = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1);
    const uint32_t halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (half & 1u))) ++half;
    return static_cast<uint16_t>(sign | half);
  }
  uint32_t half = ((abs >> 13) - ((127 - 15) << 10));
  const uint32_t rem = abs & 0x1FFFu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1u))) ++half;
  return static_cast<uint16_t>(sign | half);
}

inline float bf16_to_f32(uint16_t b) {
  uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

inline uint16_t f32_to_bf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof(x));
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);  // quiet NaN
  x += 0x7FFFu + ((x >> 16) & 1u);
  return static_cast<uint16_t>(x >> 16);
}

// Reads element i of a float tensor of type t at possibly unaligned `data`.
inline float load_float(const void* data, DType t, size_t i) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  switch (t) {
    case DType::kF32: {
      float v;
      std::memcpy(&v, bytes + i * 4, 4);
      return v;
    }
    case DType::kF16: {
      uint16_t v;
      std::memcpy(&v, bytes + i * 2, 2);
      return f16_to_f32(v);
    }
    case DType::kBF16: {
      uint16_t v;
      std::memcpy(&v, bytes + i * 2, 2);
      return bf16_to_f32(v);
    }
    case DType::kF64: {
      double v;
      std::memcpy(&v, bytes + i * 8, 8);
      return static_cast<float>(v);
    }
    default: return 0.0f;
  }
}

inline void store_float(void* data, DType t, size_t i, float v) {
  auto* bytes = static_cast<unsigned char*>(data);
  switch (t) {
    case DType::kF32: std::memcpy(bytes + i * 4, &v, 4); break;
    case DType::kF16: {
      uint16_t h = f32_to_f16(v);
      std::memcpy(bytes + i * 2, &h, 2);
      break;
    }
    case DType::kBF16: {
      uint16_t h = f32_to_bf16(v);
      std::memcpy(bytes + i * 2, &h, 2);
      break;
    }
    case DType::kF64: {
      double d = v;
      std::memcpy(bytes + i * 8, &d, 8);
      break;
    }
    default: break;
  }
}

}  // namespace lorarar
