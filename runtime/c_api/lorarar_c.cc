// The C API over the C++ core (LoRA files, merging, fusing); engine_c.cc
// has the engine's functions.
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "c_api/handles.h"
#include "core/fuse.h"
#include "extension/adapter_io.h"
#include "lorarar/version.h"

using namespace lorarar;

std::string& lorarar::c_api::last_error() {
  thread_local std::string message;
  return message;
}

namespace {

using c_api::fail;
using c_api::guarded;

void fill_info(const LoraLayer& l, lorarar_layer_info* out) {
  out->module = l.module.c_str();
  out->rank = l.rank;
  out->in_features = l.in_features;
  out->out_features = l.out_features;
  out->alpha = l.alpha;
  out->scale = l.scale;
  out->alpha_in_file = l.alpha_in_file ? 1 : 0;
}

bool to_dtype(lorarar_dtype d, DType* out) {
  switch (d) {
    case LORARAR_DTYPE_F32: *out = DType::kF32; return true;
    case LORARAR_DTYPE_F16: *out = DType::kF16; return true;
    case LORARAR_DTYPE_BF16: *out = DType::kBF16; return true;
  }
  return false;
}

Status fuse_options(const lorarar_fuse_params* p, FuseOptions* out, std::unique_ptr<ThreadPool>* pool) {
  if (p->kernel && !kernel_isa_from_name(p->kernel, &out->isa)) {
    return make_error(Error::kInvalidArgument,
                      std::string("unknown kernel ") + json::quote(p->kernel) + " (auto, scalar, avx2, neon)");
  }
  if (!kernel_isa_available(out->isa)) {
    return make_error(Error::kUnsupported, std::string("kernel ") + p->kernel + " is not available on this CPU");
  }
  if (p->n_threads < 0) return make_error(Error::kInvalidArgument, "n_threads must be >= 0");
  *pool = std::make_unique<ThreadPool>(p->n_threads);
  out->pool = pool->get();
  return Status::ok();
}

LoraFile::Options lora_options(const lorarar_lora_load_params* params) {
  const lorarar_lora_load_params p = params ? *params : lorarar_lora_load_default_params();
  LoraFile::Options options;
  options.base = p.base ? &p.base->unet->base() : nullptr;
  options.check_values = p.check_values != 0;
  return options;
}
}  // namespace

extern "C" {

const char* lorarar_version(void) { return LORARAR_VERSION_STRING; }
int lorarar_api_version(void) { return LORARAR_API_VERSION; }

const char* lorarar_status_string(lorarar_status status) {
  switch (status) {
    case LORARAR_OK: return "ok";
    case LORARAR_ERR_INVALID_ARGUMENT: return "invalid argument";
    case LORARAR_ERR_INVALID_FILE: return "invalid file";
    case LORARAR_ERR_UNSUPPORTED: return "unsupported";
    case LORARAR_ERR_NOT_FOUND: return "not found";
    case LORARAR_ERR_IO: return "i/o error";
    case LORARAR_ERR_OUT_OF_MEMORY: return "out of memory";
    case LORARAR_ERR_CANCELLED: return "cancelled";
    case LORARAR_ERR_INTERNAL: return "internal error";
  }
  return "unknown status";
}

const char* lorarar_last_error(void) { return c_api::last_error().c_str(); }

lorarar_status lorarar_base_open_unet(const char* dir, lorarar_base** out) {
  return guarded([&] {
    LORARAR_CHECK_ARG(dir && out, "dir and out must not be NULL");
    auto unet = UNetDir::open(dir);
    if (!unet.ok()) return fail(unet.status());
    *out = new lorarar_base{std::move(unet).get()};
    return LORARAR_OK;
  });
}

void lorarar_base_free(lorarar_base* base) { delete base; }

size_t lorarar_base_num_layers(const lorarar_base* base) { return base ? base->unet->base().targets().size() : 0; }

lorarar_lora_load_params lorarar_lora_load_default_params(void) {
  lorarar_lora_load_params p;
  p.base = nullptr;
  p.check_values = 1;
  return p;
}

lorarar_status lorarar_lora_load(const char* path, const lorarar_lora_load_params* params, lorarar_lora** out) {
  return guarded([&] {
    LORARAR_CHECK_ARG(path && out, "path and out must not be NULL");
    const LoraFile::Options options = lora_options(params);
    auto file = LoraFile::load(path, options);
    if (!file.ok()) return fail(file.status());
    *out = new lorarar_lora{std::move(file).get()};
    return LORARAR_OK;
  });
}

lorarar_status lorarar_lora_load_from_memory(const void* data, size_t size, const char* name,
                                             const char* adapter_config_json, const lorarar_lora_load_params* params,
                                             lorarar_lora** out) {
  return guarded([&] {
    LORARAR_CHECK_ARG(name && out, "name and out must not be NULL");
    LORARAR_CHECK_ARG(data || size == 0, "data must not be NULL");
    const LoraFile::Options options = lora_options(params);
    auto file = LoraFile::from_memory(data, size, name, adapter_config_json ? adapter_config_json : "", options);
    if (!file.ok()) return fail(file.status());
    *out = new lorarar_lora{std::move(file).get()};
    return LORARAR_OK;
  });
}

void lorarar_lora_free(lorarar_lora* lora) { delete lora; }

const char* lorarar_lora_format(const lorarar_lora* lora) {
  return lora ? lora_format_name(lora->file->model().format) : "";
}

size_t lorarar_lora_num_layers(const lorarar_lora* lora) { return lora ? lora->file->model().layers.size() : 0; }

size_t lorarar_lora_num_text_encoder_tensors(const lorarar_lora* lora) {
  return lora ? lora->file->model().text_encoder_keys.size() : 0;
}

lorarar_status lorarar_lora_layer(const lorarar_lora* lora, size_t index, lorarar_layer_info* out) {
  return guarded([&] {
    LORARAR_CHECK_ARG(lora && out, "lora and out must not be NULL");
    const auto& layers = lora->file->model().layers;
    LORARAR_CHECK_ARG(index < layers.size(), "layer index out of range");
    fill_info(layers[index], out);
    return LORARAR_OK;
  });
}

lorarar_status lorarar_coeffs_create(lorarar_coeffs** out) {
  return guarded([&] {
    LORARAR_CHECK_ARG(out, "out must not be NULL");
    *out = new lorarar_coeffs();
    return LORARAR_OK;
  });
}

lorarar_status lorarar_coeffs_load(const char* path, lorarar_coeffs** out) {
  return guarded([&] {
    LORARAR_CHECK_ARG(path && out, "path and out must not be NULL");
    auto c = load_coefficients(path);
    if (!c.ok()) return fail(c.status());
    *out = new lorarar_coeffs{std::move(c).get()};
    return LORARAR_OK;
  });
}

lorarar_status lorarar_coeffs_set(lorarar_coeffs* coeffs, const char* module, const float* m_content,
                                  const float* m_style, size_t n) {
  return guarded([&] {
    LORARAR_CHECK_ARG(coeffs && module && m_content && m_style, "arguments must not be NULL");
    coeffs->coefficients[module] = {std::vector<float>(m_content, m_content + n),
                                    std::vector<float>(m_style, m_style + n)};
    return LORARAR_OK;
  });
}

lorarar_status lorarar_coeffs_save(const lorarar_coeffs* coeffs, const char* path) {
  return guarded([&] {
    LORARAR_CHECK_ARG(coeffs && path, "arguments must not be NULL");
    Status s = save_coefficients(coeffs->coefficients, path);
    return s.is_ok() ? LORARAR_OK : fail(s);
  });
}

void lorarar_coeffs_free(lorarar_coeffs* coeffs) { delete coeffs; }

lorarar_merge_params lorarar_merge_default_params(void) {
  lorarar_merge_params p;
  p.method = LORARAR_MERGE_DIRECT;
  p.content_scale = 1.0f;
  p.style_scale = 1.0f;
  p.coeffs = nullptr;
  return p;
}

lorarar_status lorarar_merge(const lorarar_lora* content, const lorarar_lora* style, const lorarar_merge_params* params,
                             lorarar_adapter** out) {
  return guarded([&] {
    LORARAR_CHECK_ARG(content && style && out, "content, style and out must not be NULL");
    const lorarar_merge_params p = params ? *params : lorarar_merge_default_params();
    LORARAR_CHECK_ARG(p.method == LORARAR_MERGE_DIRECT || p.method == LORARAR_MERGE_COLUMNS, "unknown merge method");
    MergeOptions options;
    options.method = p.method == LORARAR_MERGE_COLUMNS ? MergeMethod::kColumns : MergeMethod::kDirect;
    options.content_scale = p.content_scale;
    options.style_scale = p.style_scale;
    options.coefficients = p.coeffs ? &p.coeffs->coefficients : nullptr;
    auto merged = merge(content->file->model(), style->file->model(), options);
    if (!merged.ok()) return fail(merged.status());
    *out = new lorarar_adapter{std::move(merged).get(), {content->file, style->file}};
    return LORARAR_OK;
  });
}

lorarar_status lorarar_adapter_from_lora(const lorarar_lora* lora, float scale, lorarar_adapter** out) {
  return guarded([&] {
    LORARAR_CHECK_ARG(lora && out, "lora and out must not be NULL");
    *out = new lorarar_adapter{single_adapter(lora->file->model(), scale), {lora->file}};
    return LORARAR_OK;
  });
}

void lorarar_adapter_free(lorarar_adapter* adapter) { delete adapter; }

size_t lorarar_adapter_num_layers(const lorarar_adapter* adapter) {
  return adapter ? adapter->adapter.layers.size() : 0;
}

lorarar_status lorarar_adapter_layer(const lorarar_adapter* adapter, size_t index, lorarar_layer_info* out) {
  return guarded([&] {
    LORARAR_CHECK_ARG(adapter && out, "adapter and out must not be NULL");
    LORARAR_CHECK_ARG(index < adapter->adapter.layers.size(), "layer index out of range");
    const AdapterLayer& l = adapter->adapter.layers[index];
    out->module = l.module.c_str();
    out->rank = l.rank();
    out->in_features = l.in_features;
    out->out_features = l.out_features;
    out->alpha = static_cast<float>(l.rank());
    out->scale = 1.0f;
    out->alpha_in_file = 0;
    return LORARAR_OK;
  });
}

lorarar_status lorarar_adapter_materialize(const lorarar_adapter* adapter, size_t index, float* a, size_t a_count,
                                           float* b, size_t b_count) {
  return guarded([&] {
    LORARAR_CHECK_ARG(adapter && a && b, "adapter, a and b must not be NULL");
    LORARAR_CHECK_ARG(index < adapter->adapter.layers.size(), "layer index out of range");
    const AdapterLayer& l = adapter->adapter.layers[index];
    const int64_t r = l.rank();
    LORARAR_CHECK_ARG(a_count == static_cast<size_t>(r * l.in_features),
                      "a buffer must hold rank x in_features floats");
    LORARAR_CHECK_ARG(b_count == static_cast<size_t>(l.out_features * r),
                      "b buffer must hold out_features x rank floats");
    l.pack_a(0, r, 0, l.in_features, a, l.in_features);
    l.pack_b(b);
    return LORARAR_OK;
  });
}

lorarar_status lorarar_adapter_save(const lorarar_adapter* adapter, const char* path, lorarar_dtype dtype) {
  return guarded([&] {
    LORARAR_CHECK_ARG(adapter && path, "adapter and path must not be NULL");
    AdapterSaveOptions options;
    LORARAR_CHECK_ARG(to_dtype(dtype, &options.dtype), "unknown dtype");
    Status s = save_adapter(adapter->adapter, path, options);
    return s.is_ok() ? LORARAR_OK : fail(s);
  });
}

lorarar_fuse_params lorarar_fuse_default_params(void) {
  lorarar_fuse_params p;
  p.scale = 1.0f;
  p.n_threads = 0;
  p.kernel = "auto";
  return p;
}

lorarar_status lorarar_fuse_weights(const lorarar_adapter* adapter, const char* module, void* weight,
                                    lorarar_dtype dtype, int64_t out_features, int64_t in_features,
                                    const lorarar_fuse_params* params) {
  return guarded([&] {
    LORARAR_CHECK_ARG(adapter && module && weight, "adapter, module and weight must not be NULL");
    const lorarar_fuse_params p = params ? *params : lorarar_fuse_default_params();
    const AdapterLayer* layer = adapter->adapter.find(module);
    if (!layer) return fail(Error::kNotFound, std::string("the adapter has no layer ") + json::quote(module));
    WeightView w;
    w.data = weight;
    LORARAR_CHECK_ARG(to_dtype(dtype, &w.dtype), "unknown dtype");
    w.out_features = out_features;
    w.in_features = in_features;
    FuseOptions options;
    std::unique_ptr<ThreadPool> pool;
    Status s = fuse_options(&p, &options, &pool);
    if (s.is_ok()) s = fuse_layer(w, *layer, p.scale, options);
    return s.is_ok() ? LORARAR_OK : fail(s);
  });
}

lorarar_status lorarar_fuse_unet_dir(const lorarar_base* base, const lorarar_adapter* adapter, const char* out_dir,
                                     const lorarar_fuse_params* params) {
  return guarded([&] {
    LORARAR_CHECK_ARG(base && adapter && out_dir, "base, adapter and out_dir must not be NULL");
    const lorarar_fuse_params p = params ? *params : lorarar_fuse_default_params();
    FuseDirOptions options;
    options.scale = p.scale;
    std::unique_ptr<ThreadPool> pool;
    Status s = fuse_options(&p, &options.fuse, &pool);
    if (s.is_ok()) s = fuse_unet_dir(*base->unet, adapter->adapter, out_dir, options);
    return s.is_ok() ? LORARAR_OK : fail(s);
  });
}

}  // extern "C"
