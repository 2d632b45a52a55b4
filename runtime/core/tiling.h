// Tiled VAE decoding's geometry and blend (export/BUNDLE.md, "VAE tiling"),
// free of any program: the engine decodes each tile and hands it here.
//
// The latent is cut into square tiles of the decoder program's one input
// size. Along an axis the tiles are spread evenly from border to border (the
// first at 0, the last at size - tile), neighbours overlapping by at least
// `overlap`. Each tile's output pixels are weighted by a ramp rising across
// its overlap with the previous tile and falling across its overlap with the
// next (at pixel centres, so never 0); the image is the weighted sum over the
// sum of weights. The PyTorch reference is python/lorarar/tiled_decode.py.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace lorarar {

// First latent row (or column) of each tile along an axis of `size`:
// k * (size - tile) / steps rounded down, steps the fewest of at most
// tile - overlap. One tile at 0 when tile >= size. Needs 0 <= overlap < tile.
std::vector<int64_t> tile_origins(int64_t size, int64_t tile, int64_t overlap);

// Per tile, the weights of its tile * factor output pixels along the axis.
std::vector<std::vector<float>> tile_ramps(const std::vector<int64_t>& origins, int64_t tile, int64_t factor);

// Accumulates decoded tiles (channels x side x side, planar) into a
// channels x height x width image.
class TileBlend {
 public:
  TileBlend(int64_t channels, int64_t height, int64_t width);
  // `tile` is decoded tile (row, col) at output pixel (y, x); the ramps are
  // tile_ramps' entries for its row and column (each `side` long).
  void add(const float* tile, int64_t side, int64_t y, int64_t x, const std::vector<float>& ramp_y,
           const std::vector<float>& ramp_x);
  // The blended image (channels x height x width); pixels no tile covered are 0.
  void finish(float* out) const;

 private:
  int64_t channels_, height_, width_;
  std::vector<double> sum_, weight_;
};

}  // namespace lorarar
