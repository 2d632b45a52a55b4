#include <vector>

#include "core/kernels/fuse_tile.h"

namespace lorarar::kernels {

void fuse_tile_scalar(void* w, DType wt, int64_t ldw, const float* bp, int64_t r, const float* ap, int64_t lda,
                      int64_t rows, int64_t cols) {
  const size_t esize = dtype_size(wt);
  std::vector<float> acc(static_cast<size_t>(cols));
  for (int64_t i = 0; i < rows; ++i) {
    void* row = static_cast<unsigned char*>(w) + static_cast<size_t>(i * ldw) * esize;
    for (int64_t j = 0; j < cols; ++j) acc[static_cast<size_t>(j)] = load_float(row, wt, static_cast<size_t>(j));
    const float* b = bp + i * r;
    for (int64_t k = 0; k < r; ++k) {
      const float bk = b[k];
      const float* a = ap + k * lda;
      for (int64_t j = 0; j < cols; ++j) acc[static_cast<size_t>(j)] += bk * a[j];
    }
    for (int64_t j = 0; j < cols; ++j) store_float(row, wt, static_cast<size_t>(j), acc[static_cast<size_t>(j)]);
  }
}

}  // namespace lorarar::kernels
