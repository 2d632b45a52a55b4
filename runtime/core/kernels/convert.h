// Bulk conversion of float tensors (F32, F16, BF16; possibly unaligned) to
// float32: the packing step of every consumer of LoRA factors (fuse tiles,
// materialised adapters). Vectorised with F16C / NEON where available.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace lorarar::kernels {

// dst[i] = scale * src[i] for i < n.
void convert_to_f32(const uint8_t* src, DType dtype, size_t n, float scale, float* dst);

// Index of the first NaN / Inf among n elements of a float tensor, or n.
size_t first_non_finite(const uint8_t* src, DType dtype, size_t n);

}  // namespace lorarar::kernels
