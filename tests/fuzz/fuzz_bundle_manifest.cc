// libFuzzer target for a bundle's manifest.json: arbitrary bytes as the
// manifest text. Whatever parses must hold what the engine relies on without
// checking again (it indexes and sizes buffers by these fields), and the
// scheduler config it carries goes through the three schedulers as
// Engine::load and generate use it. Built by
// `make fuzz` with clang-14; seeds: the default world bundle's manifest, and
// the same with a tiled VAE decoder (tests/fuzz/corpus_bundle_manifest).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/scheduler.h"
#include "core/tiling.h"
#include "engine/bundle.h"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = lorarar::Bundle::parse("/bundle", text);
  if (!parsed.ok()) {
    check(!parsed.status().message().empty());
    return 0;
  }
  const lorarar::Bundle& b = parsed.get();
  for (const char* name : {"text_encoder", "unet", "vae_decoder"}) check(b.programs.count(name) == 1);
  for (const auto& [name, program] : b.programs) {
    check(!program.methods.empty());
    for (const auto& [method, spec] : program.methods) {
      check(!spec.inputs.empty() && !spec.outputs.empty());
      for (const auto* list : {&spec.inputs, &spec.outputs}) {
        for (const auto& t : *list) check(t.numel() <= (size_t{1} << 40));
      }
    }
  }
  check(b.image_width > 0 && b.image_height > 0 && b.latent_channels > 0 && b.latent_width > 0 && b.latent_height > 0);
  // VAE tiling: the engine cuts the latent by these and writes each tile's pixels into the image.
  check(b.image_height % b.latent_height == 0 && b.image_width % b.latent_width == 0);
  if (b.vae_tile > 0) {
    check(b.vae_tile_overlap >= 0 && b.vae_tile_overlap < b.vae_tile);
    for (int size : {b.latent_height, b.latent_width}) {
      const auto origins = lorarar::tile_origins(size, b.vae_tile, b.vae_tile_overlap);
      check(origins.front() == 0 && origins.back() + b.vae_tile == size);
    }
  }
  size_t a_size = 0, b_size = 0;
  for (const auto& l : b.slot.layers) {
    check(l.rank >= 1 && l.rank <= b.slot.max_rank && l.in_features >= 1 && l.out_features >= 1);
    a_size = std::max(a_size, static_cast<size_t>(l.a_offset + l.rank * l.in_features));
    b_size = std::max(b_size, static_cast<size_t>(l.b_offset + l.out_features * l.rank));
  }
  check(a_size == b.slot.a_size && b_size == b.slot.b_size && a_size <= (size_t{1} << 40));
  for (const auto& m : b.hypernet.methods) check(m.rank >= 1 && m.rank <= b.hypernet.rank);
  float latent[4] = {0.5f, -1.0f, 2.0f, 0.0f}, eps[4] = {0.1f, 0.2f, -0.3f, 0.4f}, noise[4] = {1, -1, 0.5f, 0};
  for (auto kind : {lorarar::SchedulerKind::kDdim, lorarar::SchedulerKind::kEuler, lorarar::SchedulerKind::kLcm}) {
    auto s = lorarar::Scheduler::create(kind, b.scheduler_config);
    if (!s.ok() || !s.get()->set_timesteps(static_cast<int>(size % 50) + 1).is_ok()) continue;
    auto& scheduler = *s.get();
    for (int i = 0; i < scheduler.num_inference_steps(); ++i) {
      float x[4], e[4];
      std::copy(latent, latent + 4, x);
      std::copy(eps, eps + 4, e);
      if (!scheduler.scale_model_input(x, 4, i).is_ok()) break;
      if (!scheduler.step(e, latent, 4, i, scheduler.step_needs_noise(i) ? noise : nullptr).is_ok()) break;
    }
  }
  return 0;
}
