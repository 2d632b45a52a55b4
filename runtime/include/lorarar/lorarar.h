/*
 * lorarar: on-device merging of a content LoRA and a style LoRA (LoRA.rar),
 * and the Stable Diffusion runtime that applies the merge.
 *
 * Plain C. Conventions, after stable-diffusion.cpp and whisper.cpp:
 *  - Objects are opaque handles, created by a function that returns a
 *    lorarar_status and writes the handle through an out pointer, and
 *    released by the matching *_free (which accepts NULL).
 *  - Every fallible call returns a lorarar_status. On failure the out pointer
 *    is left untouched and lorarar_last_error() gives a one-line message
 *    naming the file and the problem ("<path>: <what is wrong>"). Nothing
 *    aborts the host process and no C++ exception crosses this boundary.
 *  - Parameter structs come with *_default_params() functions; set only the
 *    fields you need.
 *  - Output buffers are owned by the caller.
 *  - Handles are immutable after creation and may be shared between threads;
 *    lorarar_last_error() is per thread.
 */
#ifndef LORARAR_LORARAR_H_
#define LORARAR_LORARAR_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define LORARAR_API __declspec(dllexport)
#else
#define LORARAR_API __attribute__((visibility("default")))
#endif

/* Version of this header's API; bumped on incompatible changes. */
#define LORARAR_API_VERSION 2

typedef enum lorarar_status {
  LORARAR_OK = 0,
  LORARAR_ERR_INVALID_ARGUMENT = 1, /* the caller passed something unusable */
  LORARAR_ERR_INVALID_FILE = 2,     /* a file is malformed */
  LORARAR_ERR_UNSUPPORTED = 3,      /* well-formed, but a kind the engine does not apply */
  LORARAR_ERR_NOT_FOUND = 4,        /* a file, tensor or target layer is missing */
  LORARAR_ERR_IO = 5,               /* the OS failed to read or write */
  LORARAR_ERR_OUT_OF_MEMORY = 6,
  LORARAR_ERR_CANCELLED = 7,
  LORARAR_ERR_INTERNAL = 8
} lorarar_status;

typedef enum lorarar_dtype { LORARAR_DTYPE_F32 = 0, LORARAR_DTYPE_F16 = 1, LORARAR_DTYPE_BF16 = 2 } lorarar_dtype;

/* Library version string, e.g. "0.1.0". */
LORARAR_API const char* lorarar_version(void);
/* LORARAR_API_VERSION the library was built with. */
LORARAR_API int lorarar_api_version(void);
/* Short name of a status ("ok", "invalid file", ...). */
LORARAR_API const char* lorarar_status_string(lorarar_status status);
/* Message of the last failed call on this thread; "" if none. Valid until the
 * next call into the library on this thread. */
LORARAR_API const char* lorarar_last_error(void);

/* ---------------------------------------------------------------- base model
 * The layers a LoRA may target, with their shapes: read from a diffusers UNet
 * folder (config.json + diffusion_pytorch_model.safetensors, or shards; a
 * pipeline folder with a unet/ subfolder works too). */
typedef struct lorarar_base lorarar_base;

LORARAR_API lorarar_status lorarar_base_open_unet(const char* dir, lorarar_base** out);
LORARAR_API void lorarar_base_free(lorarar_base* base);
/* Number of target layers (2-D weights and 1x1 convolutions). */
LORARAR_API size_t lorarar_base_num_layers(const lorarar_base* base);

/* ---------------------------------------------------------------- LoRA files
 * A .safetensors file (peft / diffusers, legacy diffusers, kohya / A1111), or
 * a folder holding adapter_model.safetensors (+ adapter_config.json) or
 * pytorch_lora_weights.safetensors. The file is memory-mapped; factors are not
 * copied until used. */
typedef struct lorarar_lora lorarar_lora;

typedef struct lorarar_lora_load_params {
  /* Base model to map names onto and check shapes against; NULL maps names
   * from the diffusers vocabulary and the SD 1.x / SDXL block layout. */
  const lorarar_base* base;
  /* Non-zero (default): scan every factor for NaN / Inf while loading. */
  int check_values;
} lorarar_lora_load_params;

LORARAR_API lorarar_lora_load_params lorarar_lora_load_default_params(void);
LORARAR_API lorarar_status lorarar_lora_load(const char* path, const lorarar_lora_load_params* params,
                                             lorarar_lora** out);
/* The same from the bytes of a .safetensors file already in memory (an app
 * asset, a download), copied: the caller may free `data` when this returns.
 * `name` (e.g. the asset's name) stands for the path in error messages.
 * `adapter_config_json` is the peft adapter_config.json that goes with an
 * adapter_model.safetensors, or NULL. */
LORARAR_API lorarar_status lorarar_lora_load_from_memory(const void* data, size_t size, const char* name,
                                                         const char* adapter_config_json,
                                                         const lorarar_lora_load_params* params, lorarar_lora** out);
LORARAR_API void lorarar_lora_free(lorarar_lora* lora);

/* "peft", "diffusers-legacy" or "kohya". */
LORARAR_API const char* lorarar_lora_format(const lorarar_lora* lora);
LORARAR_API size_t lorarar_lora_num_layers(const lorarar_lora* lora);
/* Text-encoder tensors in the file: reported, not applied. */
LORARAR_API size_t lorarar_lora_num_text_encoder_tensors(const lorarar_lora* lora);

typedef struct lorarar_layer_info {
  const char* module; /* diffusers module path; valid while the handle lives */
  int64_t rank;
  int64_t in_features;
  int64_t out_features;
  float alpha;       /* = rank where the file carries none */
  float scale;       /* the factor dW = scale * B A is applied with */
  int alpha_in_file; /* non-zero when alpha came from the file */
} lorarar_layer_info;

/* Layers are sorted by module path. */
LORARAR_API lorarar_status lorarar_lora_layer(const lorarar_lora* lora, size_t index, lorarar_layer_info* out);

/* ------------------------------------------------------- column coefficients
 * Per-layer merge coefficients (m_content, m_style), one per input column, as
 * the LoRA.rar hypernetwork or ZipLoRA produce them. Files are safetensors
 * with "<module>.content" and "<module>.style" 1-D tensors. */
typedef struct lorarar_coeffs lorarar_coeffs;

LORARAR_API lorarar_status lorarar_coeffs_create(lorarar_coeffs** out);
LORARAR_API lorarar_status lorarar_coeffs_load(const char* path, lorarar_coeffs** out);
/* Copies n values of each vector for `module`, replacing earlier ones. */
LORARAR_API lorarar_status lorarar_coeffs_set(lorarar_coeffs* coeffs, const char* module, const float* m_content,
                                              const float* m_style, size_t n);
LORARAR_API lorarar_status lorarar_coeffs_save(const lorarar_coeffs* coeffs, const char* path);
LORARAR_API void lorarar_coeffs_free(lorarar_coeffs* coeffs);

/* ------------------------------------------------------------------- merging
 * The merge of a content and a style LoRA is itself a LoRA of rank
 * r_content + r_style per layer:
 *   dW = (s_c B_c A_c) diag(m_c) + (s_s B_s A_s) diag(m_s) = B' A'
 * Merging records the parts; A' is materialised only where asked for, so the
 * merge itself costs microseconds. */
typedef struct lorarar_adapter lorarar_adapter;

typedef enum lorarar_merge_method {
  LORARAR_MERGE_DIRECT = 0, /* content_scale * content + style_scale * style */
  LORARAR_MERGE_COLUMNS = 1 /* per-column coefficients (layers without any are summed) */
} lorarar_merge_method;

typedef struct lorarar_merge_params {
  lorarar_merge_method method;  /* default LORARAR_MERGE_DIRECT */
  float content_scale;          /* default 1 */
  float style_scale;            /* default 1 */
  const lorarar_coeffs* coeffs; /* required by LORARAR_MERGE_COLUMNS */
} lorarar_merge_params;

LORARAR_API lorarar_merge_params lorarar_merge_default_params(void);
/* The adapter keeps the LoRAs' files mapped; the lora handles may be freed. */
LORARAR_API lorarar_status lorarar_merge(const lorarar_lora* content, const lorarar_lora* style,
                                         const lorarar_merge_params* params, lorarar_adapter** out);
/* An adapter of a single LoRA at `scale`. */
LORARAR_API lorarar_status lorarar_adapter_from_lora(const lorarar_lora* lora, float scale, lorarar_adapter** out);
LORARAR_API void lorarar_adapter_free(lorarar_adapter* adapter);

LORARAR_API size_t lorarar_adapter_num_layers(const lorarar_adapter* adapter);
/* rank is the folded rank; alpha == rank and scale == 1 (scales live in A'). */
LORARAR_API lorarar_status lorarar_adapter_layer(const lorarar_adapter* adapter, size_t index, lorarar_layer_info* out);
/* Writes A' (rank x in_features) and B' (out_features x rank), float32,
 * row-major, into caller buffers of a_count and b_count floats. */
LORARAR_API lorarar_status lorarar_adapter_materialize(const lorarar_adapter* adapter, size_t index, float* a,
                                                       size_t a_count, float* b, size_t b_count);
/* Writes the adapter as a standard LoRA (diffusers / peft keys and metadata)
 * that diffusers' load_lora_weights loads. Written atomically. */
LORARAR_API lorarar_status lorarar_adapter_save(const lorarar_adapter* adapter, const char* path, lorarar_dtype dtype);

/* -------------------------------------------------------------------- fusing
 * W += scale * B' A' into base weights, multithreaded, with AVX2 / NEON
 * kernels and a portable fallback. */
typedef struct lorarar_fuse_params {
  float scale;        /* default 1 */
  int n_threads;      /* default 0: one per hardware thread */
  const char* kernel; /* "auto" (default), "scalar", "avx2", "neon" */
} lorarar_fuse_params;

LORARAR_API lorarar_fuse_params lorarar_fuse_default_params(void);
/* Fuses the adapter's layer `module` into a row-major out x in weight. */
LORARAR_API lorarar_status lorarar_fuse_weights(const lorarar_adapter* adapter, const char* module, void* weight,
                                                lorarar_dtype dtype, int64_t out_features, int64_t in_features,
                                                const lorarar_fuse_params* params);
/* Writes out_dir: the base UNet folder with the adapter fused (same dtypes and
 * shards), built beside it and renamed into place. */
LORARAR_API lorarar_status lorarar_fuse_unet_dir(const lorarar_base* base, const lorarar_adapter* adapter,
                                                 const char* out_dir, const lorarar_fuse_params* params);

/* -------------------------------------------------------------------- engine
 * A bundle made by `lorarar export`: text encoder, UNet with a LoRA slot, VAE
 * decoder and the merging hypernetwork as ExecuTorch programs, plus tokenizer
 * and scheduler config. The engine is loaded once and is immutable: share it
 * between threads. Each thread generates through its own context, which holds
 * the current LoRA pair (the folded adapter in the UNet's LoRA slot) and
 * scratch memory. Switching the pair never reloads base weights. Contexts
 * share the packed weights: a context costs its activations (see
 * parallel_contexts for the workspace). */
typedef struct lorarar_engine lorarar_engine;
typedef struct lorarar_context lorarar_context;

typedef struct lorarar_engine_params {
  int n_threads;        /* default 0: one per hardware thread */
  int verify_checksums; /* default 1: sha256 of every bundle file against the manifest */
  /* default 0: all contexts share one activation workspace (least memory;
   * contexts generating at the same time take turns per delegate call).
   * 1: each context's programs get their own, so contexts run in parallel at
   * more memory each. Packed weights are shared by all contexts either way. */
  int parallel_contexts;
  /* default NULL: XNNPACK packs the weights on the heap at every load. An
   * existing writable folder (the app's cache dir): the first load writes
   * each program's packed weights there (one file per program, named by its
   * sha256; a bad or truncated file is rewritten), later loads map them:
   * no repacking, and the weights are clean file pages the OS can evict
   * instead of heap. The folder must stay private to the app: the mapped
   * weights are not checksummed at load. Several processes of the app may
   * load with it at once (ExecuTorch writes a file under an exclusive flock
   * and maps it under a shared one). */
  const char* packed_cache_dir;
} lorarar_engine_params;

LORARAR_API lorarar_engine_params lorarar_engine_default_params(void);
LORARAR_API lorarar_status lorarar_engine_load(const char* bundle_dir, const lorarar_engine_params* params,
                                               lorarar_engine** out);
LORARAR_API void lorarar_engine_free(lorarar_engine* engine);

typedef struct lorarar_engine_info {
  int image_width, image_height; /* output RGB8 size */
  int latent_channels, latent_width, latent_height;
  int max_rank;             /* the LoRA slot's rank: r_content + r_style must fit */
  size_t num_lora_targets;  /* layers of the LoRA slot */
  const char* backend;      /* e.g. "xnnpack" */
  const char* quantization; /* e.g. "none", "int8" */
  int has_hypernet;
  /* VAE decoding (export --vae-tile): the decoder program takes one
   * vae_tile x vae_tile latent tile, neighbours overlapping by at least
   * vae_tile_overlap; both 0 when it takes the whole latent. vae_tiles:
   * decoder runs per image (the tiles, or 1), the total decode_progress
   * reports. */
  int vae_tile, vae_tile_overlap, vae_tiles;
} lorarar_engine_info;

LORARAR_API lorarar_status lorarar_engine_get_info(const lorarar_engine* engine, lorarar_engine_info* out);

/* Checks that a LoRA's layers are all in the bundle's LoRA slot, with matching
 * shapes; the message names the first layer that is not. */
LORARAR_API lorarar_status lorarar_engine_check_lora(const lorarar_engine* engine, const lorarar_lora* lora);

LORARAR_API lorarar_status lorarar_context_create(lorarar_engine* engine, lorarar_context** out);
LORARAR_API void lorarar_context_free(lorarar_context* ctx);

typedef enum lorarar_apply_method {
  LORARAR_APPLY_HYPERNET = 0, /* LoRA.rar coefficients on the merged layers, others summed (default) */
  LORARAR_APPLY_DIRECT = 1,   /* content_scale * content + style_scale * style */
  LORARAR_APPLY_SINGLE = 2    /* the content LoRA alone (style may be NULL) */
} lorarar_apply_method;

typedef struct lorarar_apply_params {
  lorarar_apply_method method;
  float content_scale; /* default 1 */
  float style_scale;   /* default 1 */
} lorarar_apply_params;

typedef struct lorarar_merge_timings {
  double hypernet_ms; /* coefficient prediction */
  double fold_ms;     /* folding into the slot's buffers */
  double total_ms;
} lorarar_merge_timings;

LORARAR_API lorarar_apply_params lorarar_apply_default_params(void);
/* Merges the pair and loads it into this context's LoRA slot (content may be
 * NULL with SINGLE to clear the slot). `timings` may be NULL. */
LORARAR_API lorarar_status lorarar_context_set_loras(lorarar_context* ctx, const lorarar_lora* content,
                                                     const lorarar_lora* style, const lorarar_apply_params* params,
                                                     lorarar_merge_timings* timings);
/* Loads an already merged adapter (e.g. from lorarar_merge) into the slot. */
LORARAR_API lorarar_status lorarar_context_set_adapter(lorarar_context* ctx, const lorarar_adapter* adapter);

typedef enum lorarar_scheduler_kind {
  LORARAR_SCHEDULER_DDIM = 0,
  LORARAR_SCHEDULER_EULER = 1,
  LORARAR_SCHEDULER_LCM = 2
} lorarar_scheduler_kind;

/* Called after each denoising step (progress) or each VAE decoder run
 * (decode_progress: one per tile of a tiled decoder, else one); return
 * non-zero to cancel the generation. */
typedef int (*lorarar_progress_fn)(int step, int total_steps, void* user_data);

typedef struct lorarar_generate_params {
  const char* prompt;
  const char* negative_prompt; /* default "" */
  int steps;                   /* default 25 */
  float guidance;              /* default 5; <= 1 disables classifier-free guidance */
  lorarar_scheduler_kind scheduler;
  uint64_t seed;                /* same seed, same image */
  lorarar_progress_fn progress; /* may be NULL */
  /* may be NULL; (tile, vae_tiles): an SD 1.5-size decode takes as long
   * as two denoising steps, long enough for a UI to want to show it */
  lorarar_progress_fn decode_progress;
  void* user_data; /* passed to both callbacks */
} lorarar_generate_params;

typedef struct lorarar_generate_timings {
  double text_encoder_ms;
  double denoise_ms; /* all steps */
  double step_ms_median;
  double decode_ms;
  double total_ms;
} lorarar_generate_timings;

LORARAR_API lorarar_generate_params lorarar_generate_default_params(void);
/* Writes image_height x image_width x 3 bytes (RGB8, row-major) into `rgb`,
 * which holds rgb_size bytes. Returns LORARAR_ERR_CANCELLED when a progress
 * callback or lorarar_context_cancel stopped it (rgb is then left untouched). */
LORARAR_API lorarar_status lorarar_generate(lorarar_context* ctx, const lorarar_generate_params* params, uint8_t* rgb,
                                            size_t rgb_size, lorarar_generate_timings* timings);
/* Asks a running lorarar_generate on ctx to stop (checked after the text encoder, after each denoising step and
 * after each VAE decoder run: each tile of a tiled decoder); safe from any thread. A cancel that arrives before
 * lorarar_generate starts is dropped (each generation starts uncancelled): to cancel from the very start, return
 * non-zero from the progress callback. */
LORARAR_API void lorarar_context_cancel(lorarar_context* ctx);

#ifdef __cplusplus
}
#endif

#endif /* LORARAR_LORARAR_H_ */
