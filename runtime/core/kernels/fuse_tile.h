// The inner kernel of fuse_layer, one per ISA:
//   W[0:rows, 0:cols] += Bp[0:rows, 0:r] * Ap[0:r, 0:cols]
// W has row stride ldw elements of type wt (F32, F16 or BF16); Bp is float32
// with row stride r; Ap is float32 with row stride lda. Accumulation is in
// float32, with one rounding to wt per element.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace lorarar::kernels {

using FuseTileFn = void (*)(void* w, DType wt, int64_t ldw, const float* bp, int64_t r, const float* ap, int64_t lda,
                            int64_t rows, int64_t cols);

void fuse_tile_scalar(void* w, DType wt, int64_t ldw, const float* bp, int64_t r, const float* ap, int64_t lda,
                      int64_t rows, int64_t cols);
#if defined(__x86_64__) || defined(_M_X64)
void fuse_tile_avx2(void* w, DType wt, int64_t ldw, const float* bp, int64_t r, const float* ap, int64_t lda,
                    int64_t rows, int64_t cols);
bool cpu_has_avx2_fma_f16c();
#endif
#if defined(__aarch64__)
void fuse_tile_neon(void* w, DType wt, int64_t ldw, const float* bp, int64_t r, const float* ap, int64_t lda,
                    int64_t rows, int64_t cols);
#endif

}  // namespace lorarar::kernels
