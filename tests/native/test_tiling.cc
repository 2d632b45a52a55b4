#include <cstdint>
#include <vector>

#include "core/tiling.h"
#include "harness.h"

using lorarar::tile_origins;
using lorarar::tile_ramps;
using lorarar::TileBlend;

TEST(tile_origins_known_cases) {
  // Python's lorarar.tiled_decode.tile_origins gives the same lists.
  CHECK(tile_origins(64, 32, 8) == (std::vector<int64_t>{0, 16, 32}));
  CHECK(tile_origins(64, 40, 10) == (std::vector<int64_t>{0, 24}));
  CHECK(tile_origins(15, 8, 2) == (std::vector<int64_t>{0, 3, 7}));
  CHECK(tile_origins(16, 16, 0) == (std::vector<int64_t>{0}));
  CHECK(tile_origins(16, 20, 4) == (std::vector<int64_t>{0}));
  CHECK(tile_origins(17, 16, 0) == (std::vector<int64_t>{0, 1}));
}

TEST(tile_origins_cover_the_axis_with_the_least_overlap) {
  for (int64_t size = 1; size <= 80; ++size) {
    for (int64_t tile = 1; tile <= size; ++tile) {
      for (int64_t overlap = 0; overlap < tile; ++overlap) {
        const auto o = tile_origins(size, tile, overlap);
        CHECK_EQ(o.front(), 0);
        CHECK_EQ(o.back(), size - tile);
        for (size_t k = 1; k < o.size(); ++k) {
          CHECK(o[k] > o[k - 1]);
          CHECK(o[k] - o[k - 1] <= tile - overlap);  // neighbours overlap by at least `overlap`
        }
        // The fewest tiles that can: one fewer could not span size with steps of tile - overlap.
        if (o.size() > 1) CHECK(static_cast<int64_t>(o.size() - 2) * (tile - overlap) < size - tile);
      }
    }
  }
}

TEST(tile_ramps_sum_to_one_where_two_tiles_meet) {
  const int64_t tile = 8, factor = 4;
  const auto origins = tile_origins(20, tile, 2);  // 0, 6, 12: overlaps of 2 latent pixels
  const auto ramps = tile_ramps(origins, tile, factor);
  CHECK_EQ(ramps.size(), origins.size());
  std::vector<double> total(20 * factor, 0.0);
  for (size_t k = 0; k < origins.size(); ++k) {
    CHECK_EQ(ramps[k].size(), static_cast<size_t>(tile * factor));
    for (int64_t p = 0; p < tile * factor; ++p) {
      CHECK(ramps[k][static_cast<size_t>(p)] > 0.0f);
      total[static_cast<size_t>(origins[k] * factor + p)] += ramps[k][static_cast<size_t>(p)];
    }
  }
  for (double t : total) CHECK_NEAR(t, 1.0, 1e-6);
  CHECK_NEAR(ramps[1][0], 0.5 / 8.0, 1e-7);  // first pixel of an 8-pixel overlap
  CHECK_NEAR(ramps[0][0], 1.0, 0.0);         // the image's border is not faded
}

TEST(tile_blend_reproduces_an_image_its_tiles_agree_on) {
  // Tiles cut from one image blend back to it exactly, whatever the overlaps (three tiles overlap here).
  const int64_t channels = 3, factor = 2, tile = 8, height = 15, width = 21;
  std::vector<float> image(static_cast<size_t>(channels * height * factor * width * factor));
  for (size_t i = 0; i < image.size(); ++i) image[i] = static_cast<float>((i * 7919) % 1000) / 1000.0f;
  const auto rows = tile_origins(height, tile, 3), cols = tile_origins(width, tile, 3);
  const auto ramp_rows = tile_ramps(rows, tile, factor), ramp_cols = tile_ramps(cols, tile, factor);
  const int64_t side = tile * factor, h = height * factor, w = width * factor;
  TileBlend blend(channels, h, w);
  std::vector<float> cut(static_cast<size_t>(channels * side * side));
  for (size_t i = 0; i < rows.size(); ++i) {
    for (size_t j = 0; j < cols.size(); ++j) {
      for (int64_t ch = 0; ch < channels; ++ch) {
        for (int64_t r = 0; r < side; ++r) {
          for (int64_t c = 0; c < side; ++c) {
            cut[static_cast<size_t>((ch * side + r) * side + c)] =
                image[static_cast<size_t>((ch * h + rows[i] * factor + r) * w + cols[j] * factor + c)];
          }
        }
      }
      blend.add(cut.data(), side, rows[i] * factor, cols[j] * factor, ramp_rows[i], ramp_cols[j]);
    }
  }
  std::vector<float> out(image.size());
  blend.finish(out.data());
  for (size_t i = 0; i < image.size(); ++i) CHECK_NEAR(out[i], image[i], 1e-6);
}
