// The C API of the engine: bundles, contexts, LoRA pairs, generation.
#include <cstring>
#include <functional>
#include <memory>
#include <string>

#include "c_api/handles.h"
#include "engine/engine.h"

using namespace lorarar;
using c_api::fail;
using c_api::guarded;

struct lorarar_engine {
  std::shared_ptr<const Engine> engine;
};
struct lorarar_context {
  std::unique_ptr<Context> context;
};

namespace {
// A C progress callback as the engine's: non-zero from the caller cancels; NULL reports nothing.
std::function<bool(int, int)> go_on_unless(lorarar_progress_fn fn, void* user) {
  if (!fn) return nullptr;
  return [fn, user](int done, int total) { return fn(done, total, user) == 0; };
}
}  // namespace

extern "C" {

lorarar_engine_params lorarar_engine_default_params(void) {
  lorarar_engine_params p;
  p.n_threads = 0;
  p.verify_checksums = 1;
  p.parallel_contexts = 0;
  p.packed_cache_dir = nullptr;
  return p;
}

lorarar_status lorarar_engine_load(const char* bundle_dir, const lorarar_engine_params* params, lorarar_engine** out) {
  return guarded([&] {
    LORARAR_CHECK_ARG(bundle_dir && out, "bundle_dir and out must not be NULL");
    const lorarar_engine_params p = params ? *params : lorarar_engine_default_params();
    EngineOptions options;
    options.n_threads = p.n_threads;
    options.verify_checksums = p.verify_checksums != 0;
    options.parallel_contexts = p.parallel_contexts != 0;
    if (p.packed_cache_dir) options.packed_cache_dir = p.packed_cache_dir;
    auto engine = Engine::load(bundle_dir, options);
    if (!engine.ok()) return fail(engine.status());
    *out = new lorarar_engine{std::move(engine).get()};
    return LORARAR_OK;
  });
}

void lorarar_engine_free(lorarar_engine* engine) { delete engine; }

lorarar_status lorarar_engine_get_info(const lorarar_engine* engine, lorarar_engine_info* out) {
  return guarded([&] {
    LORARAR_CHECK_ARG(engine && out, "engine and out must not be NULL");
    const Bundle& b = engine->engine->bundle();
    out->image_width = b.image_width;
    out->image_height = b.image_height;
    out->latent_channels = b.latent_channels;
    out->latent_width = b.latent_width;
    out->latent_height = b.latent_height;
    out->max_rank = static_cast<int>(b.slot.max_rank);
    out->num_lora_targets = b.slot.layers.size();
    out->backend = b.backend.c_str();
    out->quantization = b.quantization.c_str();
    out->has_hypernet = b.has_hypernet ? 1 : 0;
    out->vae_tile = b.vae_tile;
    out->vae_tile_overlap = b.vae_tile_overlap;
    out->vae_tiles = b.vae_tiles();
    return LORARAR_OK;
  });
}

lorarar_status lorarar_engine_check_lora(const lorarar_engine* engine, const lorarar_lora* lora) {
  return guarded([&] {
    LORARAR_CHECK_ARG(engine && lora, "engine and lora must not be NULL");
    Status s = engine->engine->check_lora(lora->file->model());
    return s.is_ok() ? LORARAR_OK : fail(s);
  });
}

lorarar_status lorarar_context_create(lorarar_engine* engine, lorarar_context** out) {
  return guarded([&] {
    LORARAR_CHECK_ARG(engine && out, "engine and out must not be NULL");
    auto ctx = Context::create(engine->engine);
    if (!ctx.ok()) return fail(ctx.status());
    *out = new lorarar_context{std::move(ctx).get()};
    return LORARAR_OK;
  });
}

void lorarar_context_free(lorarar_context* ctx) { delete ctx; }

lorarar_apply_params lorarar_apply_default_params(void) {
  lorarar_apply_params p;
  p.method = LORARAR_APPLY_HYPERNET;
  p.content_scale = 1.0f;
  p.style_scale = 1.0f;
  return p;
}

lorarar_status lorarar_context_set_loras(lorarar_context* ctx, const lorarar_lora* content, const lorarar_lora* style,
                                         const lorarar_apply_params* params, lorarar_merge_timings* timings) {
  return guarded([&] {
    LORARAR_CHECK_ARG(ctx, "ctx must not be NULL");
    const lorarar_apply_params p = params ? *params : lorarar_apply_default_params();
    ApplyOptions options;
    switch (p.method) {
      case LORARAR_APPLY_HYPERNET: options.method = ApplyMethod::kHypernet; break;
      case LORARAR_APPLY_DIRECT: options.method = ApplyMethod::kDirect; break;
      case LORARAR_APPLY_SINGLE: options.method = ApplyMethod::kSingle; break;
      default: return fail(Error::kInvalidArgument, "unknown apply method");
    }
    options.content_scale = p.content_scale;
    options.style_scale = p.style_scale;
    MergeTimings t;
    Status s = ctx->context->set_loras(content ? &content->file->model() : nullptr,
                                       style ? &style->file->model() : nullptr, options, &t);
    if (!s.is_ok()) return fail(s);
    if (timings) {
      timings->hypernet_ms = t.hypernet_ms;
      timings->fold_ms = t.fold_ms;
      timings->total_ms = t.total_ms;
    }
    return LORARAR_OK;
  });
}

lorarar_status lorarar_context_set_adapter(lorarar_context* ctx, const lorarar_adapter* adapter) {
  return guarded([&] {
    LORARAR_CHECK_ARG(ctx && adapter, "ctx and adapter must not be NULL");
    Status s = ctx->context->set_adapter(adapter->adapter);
    return s.is_ok() ? LORARAR_OK : fail(s);
  });
}

lorarar_generate_params lorarar_generate_default_params(void) {
  lorarar_generate_params p;
  p.prompt = "";
  p.negative_prompt = "";
  p.steps = 25;
  p.guidance = 5.0f;
  p.scheduler = LORARAR_SCHEDULER_DDIM;
  p.seed = 0;
  p.progress = nullptr;
  p.decode_progress = nullptr;
  p.user_data = nullptr;
  return p;
}

lorarar_status lorarar_generate(lorarar_context* ctx, const lorarar_generate_params* params, uint8_t* rgb,
                                size_t rgb_size, lorarar_generate_timings* timings) {
  return guarded([&] {
    LORARAR_CHECK_ARG(ctx && params && rgb, "ctx, params and rgb must not be NULL");
    GenerateOptions options;
    options.prompt = params->prompt ? params->prompt : "";
    options.negative_prompt = params->negative_prompt ? params->negative_prompt : "";
    options.steps = params->steps;
    options.guidance = params->guidance;
    switch (params->scheduler) {
      case LORARAR_SCHEDULER_DDIM: options.scheduler = SchedulerKind::kDdim; break;
      case LORARAR_SCHEDULER_EULER: options.scheduler = SchedulerKind::kEuler; break;
      case LORARAR_SCHEDULER_LCM: options.scheduler = SchedulerKind::kLcm; break;
      default: return fail(Error::kInvalidArgument, "unknown scheduler");
    }
    options.seed = params->seed;
    options.progress = go_on_unless(params->progress, params->user_data);
    options.decode_progress = go_on_unless(params->decode_progress, params->user_data);
    GenerateTimings t;
    Status s = ctx->context->generate(options, rgb, rgb_size, &t);
    if (!s.is_ok()) return fail(s);
    if (timings) {
      timings->text_encoder_ms = t.text_encoder_ms;
      timings->denoise_ms = t.denoise_ms;
      timings->step_ms_median = t.step_ms_median;
      timings->decode_ms = t.decode_ms;
      timings->total_ms = t.total_ms;
    }
    return LORARAR_OK;
  });
}

void lorarar_context_cancel(lorarar_context* ctx) {
  if (ctx) ctx->context->cancel();
}

}  // extern "C"
