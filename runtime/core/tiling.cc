#include "core/tiling.h"

#include <algorithm>

namespace lorarar {

std::vector<int64_t> tile_origins(int64_t size, int64_t tile, int64_t overlap) {
  if (tile >= size) return {0};
  const int64_t steps = (size - tile + (tile - overlap) - 1) / (tile - overlap);
  std::vector<int64_t> origins(static_cast<size_t>(steps + 1));
  for (int64_t k = 0; k <= steps; ++k) origins[static_cast<size_t>(k)] = k * (size - tile) / steps;
  return origins;
}

std::vector<std::vector<float>> tile_ramps(const std::vector<int64_t>& origins, int64_t tile, int64_t factor) {
  const int64_t pixels = tile * factor;
  std::vector<std::vector<float>> ramps;
  for (size_t k = 0; k < origins.size(); ++k) {
    std::vector<float> weight(static_cast<size_t>(pixels), 1.0f);
    for (int64_t p = 0; p < pixels; ++p) {
      const double centre = static_cast<double>(p) + 0.5;
      double w = 1.0;
      if (k > 0) w = std::min(w, centre / static_cast<double>((origins[k - 1] + tile - origins[k]) * factor));
      if (k + 1 < origins.size()) {
        w = std::min(w, (static_cast<double>(pixels) - centre) /
                            static_cast<double>((origins[k] + tile - origins[k + 1]) * factor));
      }
      weight[static_cast<size_t>(p)] = static_cast<float>(w);
    }
    ramps.push_back(std::move(weight));
  }
  return ramps;
}

TileBlend::TileBlend(int64_t channels, int64_t height, int64_t width)
    : channels_(channels),
      height_(height),
      width_(width),
      sum_(static_cast<size_t>(channels * height * width), 0.0),
      weight_(static_cast<size_t>(height * width), 0.0) {}

void TileBlend::add(const float* tile, int64_t side, int64_t y, int64_t x, const std::vector<float>& ramp_y,
                    const std::vector<float>& ramp_x) {
  const size_t plane = static_cast<size_t>(height_ * width_);
  for (int64_t r = 0; r < side; ++r) {
    const size_t row = static_cast<size_t>((y + r) * width_ + x);
    for (int64_t c = 0; c < side; ++c) {
      const double w = double{ramp_y[static_cast<size_t>(r)]} * ramp_x[static_cast<size_t>(c)];
      weight_[row + static_cast<size_t>(c)] += w;
      for (int64_t ch = 0; ch < channels_; ++ch) {
        sum_[static_cast<size_t>(ch) * plane + row + static_cast<size_t>(c)] +=
            w * tile[static_cast<size_t>((ch * side + r) * side + c)];
      }
    }
  }
}

void TileBlend::finish(float* out) const {
  const size_t plane = static_cast<size_t>(height_ * width_);
  for (int64_t ch = 0; ch < channels_; ++ch) {
    for (size_t p = 0; p < plane; ++p) {
      const size_t at = static_cast<size_t>(ch) * plane + p;
      out[at] = weight_[p] > 0.0 ? static_cast<float>(sum_[at] / weight_[p]) : 0.0f;
    }
  }
}

}  // namespace lorarar
