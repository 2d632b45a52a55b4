/* lorarar_generate: the C API end to end, as an app embeds it.
 *
 *   lorarar_generate BUNDLE_DIR CONTENT.safetensors STYLE.safetensors OUT.ppm
 *                    [--prompt P] [--method hypernet|direct] [--steps N] [--seed S] [--threads N]
 *                    [--scheduler ddim|euler|lcm] [--cycles N] [--contexts N] [--parallel 0|1]
 *                    [--packed-cache DIR]
 *
 * Loads the bundle once, merges the pair into a context's LoRA slot, generates one image (binary PPM) and prints
 * the timings as one JSON object. --cycles N repeats switch-pair + generate N times (the image of the last cycle
 * is written) and reports the peak RSS, so a leak or a reload shows. --contexts N then creates N - 1 more contexts
 * that each merge and generate once, so the RSS shows what a context costs (--parallel: the engine's
 * parallel_contexts). Plain C99: it compiles against the public
 * header only, which is the point. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lorarar/lorarar.h"

static int fail(const char* what) {
  fprintf(stderr, "error: %s: %s\n", what, lorarar_last_error());
  return 1;
}

/* A field of /proc/self/status in kB (-1 where there is none, e.g. off Linux). */
static long status_kb(const char* field) {
  FILE* f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  const size_t n = strlen(field);
  if (!f) return -1;
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, field, n) == 0 && line[n] == ':') kb = strtol(line + n + 1, NULL, 10);
  }
  fclose(f);
  return kb;
}

static long peak_rss_kb(void) { return status_kb("VmHWM"); }

/* decode_progress: counts the decoder runs (one per VAE tile, or one); reset before each generation. */
static int count_decode_runs(int tile, int total_tiles, void* user_data) {
  (void)tile;
  (void)total_tiles;
  ++*(int*)user_data;
  return 0;
}

/* Where the memory is after each stage: anonymous (heap, planned activations, packed weights) vs file-backed
 * (mapped programs and code), so a regression in either shows in the JSON. */
enum { STAGE_START, STAGE_ENGINE, STAGE_CONTEXT, STAGE_FIRST_IMAGE, STAGE_MORE_CONTEXTS, STAGE_COUNT };
static const char* const kStageNames[STAGE_COUNT] = {"start", "engine_loaded", "context_created", "first_image",
                                                     "more_contexts"};
static long stage_anon_kb[STAGE_COUNT];
static long stage_file_kb[STAGE_COUNT];

static void mark_stage(int stage) {
  stage_anon_kb[stage] = status_kb("RssAnon");
  stage_file_kb[stage] = status_kb("RssFile");
}

int main(int argc, char** argv) {
  if (argc < 5) {
    fprintf(stderr,
            "usage: %s BUNDLE_DIR CONTENT STYLE OUT.ppm [--prompt P] [--method hypernet|direct] [--steps N] "
            "[--seed S] [--threads N] [--scheduler ddim|euler|lcm] [--cycles N] [--contexts N] [--parallel 0|1] "
            "[--packed-cache DIR]\n",
            argv[0]);
    return 2;
  }
  lorarar_generate_params gen = lorarar_generate_default_params();
  lorarar_apply_params apply = lorarar_apply_default_params();
  lorarar_engine_params eng = lorarar_engine_default_params();
  gen.prompt = "a sks bird in zwz style";
  int decode_runs = 0;
  gen.decode_progress = count_decode_runs;
  gen.user_data = &decode_runs;
  int cycles = 1;
  int contexts = 1;
  for (int i = 5; i + 1 < argc; i += 2) {
    const char* key = argv[i];
    const char* value = argv[i + 1];
    if (strcmp(key, "--prompt") == 0) {
      gen.prompt = value;
    } else if (strcmp(key, "--method") == 0) {
      apply.method = strcmp(value, "direct") == 0 ? LORARAR_APPLY_DIRECT : LORARAR_APPLY_HYPERNET;
    } else if (strcmp(key, "--steps") == 0) {
      gen.steps = atoi(value);
    } else if (strcmp(key, "--seed") == 0) {
      gen.seed = strtoull(value, NULL, 10);
    } else if (strcmp(key, "--threads") == 0) {
      eng.n_threads = atoi(value);
    } else if (strcmp(key, "--cycles") == 0) {
      cycles = atoi(value);
    } else if (strcmp(key, "--contexts") == 0) {
      contexts = atoi(value);
    } else if (strcmp(key, "--parallel") == 0) {
      eng.parallel_contexts = atoi(value);
    } else if (strcmp(key, "--packed-cache") == 0) {
      eng.packed_cache_dir = value;
    } else if (strcmp(key, "--scheduler") == 0) {
      gen.scheduler = strcmp(value, "euler") == 0 ? LORARAR_SCHEDULER_EULER
                      : strcmp(value, "lcm") == 0 ? LORARAR_SCHEDULER_LCM
                                                  : LORARAR_SCHEDULER_DDIM;
    } else {
      fprintf(stderr, "error: unknown option %s\n", key);
      return 2;
    }
  }

  mark_stage(STAGE_START);
  lorarar_engine* engine = NULL;
  if (lorarar_engine_load(argv[1], &eng, &engine) != LORARAR_OK) return fail(argv[1]);
  lorarar_engine_info info;
  lorarar_engine_get_info(engine, &info);
  lorarar_lora* content = NULL;
  lorarar_lora* style = NULL;
  lorarar_lora_load_params load = lorarar_lora_load_default_params();
  if (lorarar_lora_load(argv[2], &load, &content) != LORARAR_OK) return fail(argv[2]);
  if (lorarar_lora_load(argv[3], &load, &style) != LORARAR_OK) return fail(argv[3]);
  if (contexts < 1) {
    fprintf(stderr, "error: --contexts must be >= 1\n");
    return 2;
  }
  lorarar_context** contexts_kept = calloc((size_t)contexts, sizeof *contexts_kept);
  if (!contexts_kept) return 1;
  lorarar_context* ctx = NULL;
  mark_stage(STAGE_ENGINE);
  if (lorarar_context_create(engine, &ctx) != LORARAR_OK) return fail("context");
  mark_stage(STAGE_CONTEXT);

  const size_t size = (size_t)info.image_width * (size_t)info.image_height * 3;
  uint8_t* rgb = malloc(size);
  if (!rgb) return 1;
  lorarar_merge_timings merge = {0};
  lorarar_generate_timings timings = {0};
  long rss_after_first = 0;
  for (int c = 0; c < cycles; ++c) {
    /* Alternate the pair's order on odd cycles, so every cycle really re-merges. */
    const int swap = (c % 2) == 1;
    lorarar_apply_params p = apply;
    if (swap) p.method = LORARAR_APPLY_DIRECT;
    if (lorarar_context_set_loras(ctx, swap ? style : content, swap ? content : style, &p, &merge) != LORARAR_OK) {
      return fail("merge");
    }
    decode_runs = 0;
    if (lorarar_generate(ctx, &gen, rgb, size, &timings) != LORARAR_OK) return fail("generate");
    if (c == 0) {
      rss_after_first = peak_rss_kb();
      mark_stage(STAGE_FIRST_IMAGE);
    }
  }
  for (int c = 1; c < contexts; ++c) {
    lorarar_context* more = NULL;
    if (lorarar_context_create(engine, &more) != LORARAR_OK) return fail("context");
    if (lorarar_context_set_loras(more, content, style, &apply, NULL) != LORARAR_OK) return fail("merge");
    decode_runs = 0;
    if (lorarar_generate(more, &gen, rgb, size, NULL) != LORARAR_OK) return fail("generate");
    /* Kept until the end, as an app serving several threads keeps them. */
    contexts_kept[c] = more;
  }
  mark_stage(STAGE_MORE_CONTEXTS);
  FILE* out = fopen(argv[4], "wb");
  if (!out) {
    fprintf(stderr, "error: %s: cannot write\n", argv[4]);
    return 1;
  }
  fprintf(out, "P6\n%d %d\n255\n", info.image_width, info.image_height);
  const int ok = fwrite(rgb, 1, size, out) == size;
  if (fclose(out) != 0 || !ok) {
    fprintf(stderr, "error: %s: write failed\n", argv[4]);
    return 1;
  }
  printf(
      "{\"backend\": \"%s\", \"merge_ms\": %.3f, \"hypernet_ms\": %.3f, \"fold_ms\": %.3f, \"text_encoder_ms\": "
      "%.3f, \"step_ms_median\": %.3f, \"decode_ms\": %.3f, \"total_ms\": %.3f, \"cycles\": %d, "
      "\"contexts\": %d, \"vae_tiles\": %d, \"decode_runs\": %d, \"peak_rss_first_kb\": %ld, \"peak_rss_kb\": %ld, "
      "\"rss_kb\": {",
      info.backend, merge.total_ms, merge.hypernet_ms, merge.fold_ms, timings.text_encoder_ms, timings.step_ms_median,
      timings.decode_ms, timings.total_ms, cycles, contexts, info.vae_tiles, decode_runs, rss_after_first,
      peak_rss_kb());
  for (int i = 0; i < STAGE_COUNT; ++i) {
    printf("%s\"%s\": {\"anon\": %ld, \"file\": %ld}", i ? ", " : "", kStageNames[i], stage_anon_kb[i],
           stage_file_kb[i]);
  }
  printf("}}\n");
  free(rgb);
  for (int c = 1; c < contexts; ++c) lorarar_context_free(contexts_kept[c]);
  free(contexts_kept);
  lorarar_context_free(ctx);
  lorarar_lora_free(content);
  lorarar_lora_free(style);
  lorarar_engine_free(engine);
  return 0;
}
