// The on-device pipeline: a loaded bundle (Engine, immutable and shared by
// threads) and per-thread generation state (Context: its own program
// instances, the LoRA slot's two buffers, a cancel flag).
//
// Switching LoRAs only rewrites the slot buffers, which the UNet program reads
// as inputs: base weights are never reloaded, nothing is re-exported or
// recompiled. The merge itself is the native fold of runtime/core/adapter.h,
// with coefficients from the bundle's hypernetwork program.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/adapter.h"
#include "core/clip_tokenizer.h"
#include "core/lora.h"
#include "core/scheduler.h"
#include "engine/bundle.h"
#include "engine/program.h"

namespace lorarar {

struct EngineOptions {
  // 1: run every program on the calling thread; otherwise ExecuTorch's shared
  // pool (one thread per core) runs them.
  int n_threads = 0;
  bool verify_checksums = true;
  // false: every context's programs share one XNNPACK activation workspace
  // (least memory; contexts generating at the same time take turns per
  // delegate call). true: one workspace per program of each context.
  bool parallel_contexts = false;
  // An existing writable folder where XNNPACK keeps each program's packed
  // weights (one file per program, named by its sha256): the first load packs
  // and writes them, later loads map them (no repacking, faster, and clean
  // file pages instead of heap). Empty: packed on the heap at every load.
  std::string packed_cache_dir;
};

class Engine {
 public:
  static Result<std::shared_ptr<const Engine>> load(const std::string& bundle_dir, const EngineOptions& options);

  const Bundle& bundle() const { return bundle_; }
  const ClipTokenizer& tokenizer() const { return tokenizer_; }
  const EngineOptions& options() const { return options_; }

  // Every layer of the LoRA must be a slot layer of the same shape whose rank
  // fits. Errors start with the LoRA's source ("<file>: layer ...").
  Status check_lora(const LoraModel& lora) const;

 private:
  Status check_lora_layers(const LoraModel& lora) const;
  Engine(Bundle bundle, ClipTokenizer tokenizer, EngineOptions options)
      : bundle_(std::move(bundle)), tokenizer_(std::move(tokenizer)), options_(options) {}
  Bundle bundle_;
  ClipTokenizer tokenizer_;
  EngineOptions options_;
};

enum class ApplyMethod { kHypernet, kDirect, kSingle };

struct ApplyOptions {
  ApplyMethod method = ApplyMethod::kHypernet;
  float content_scale = 1.0f;
  float style_scale = 1.0f;
};

struct MergeTimings {
  double hypernet_ms = 0, fold_ms = 0, total_ms = 0;
};

struct GenerateOptions {
  std::string prompt;
  std::string negative_prompt;
  int steps = 25;
  float guidance = 5.0f;
  SchedulerKind scheduler = SchedulerKind::kDdim;
  uint64_t seed = 0;
  // Called after each step; returning false cancels.
  std::function<bool(int step, int total)> progress;
  // Called after each decoder run: each tile of a tiled VAE decoder (total =
  // Bundle::vae_tiles()), or once (1, 1); returning false cancels.
  std::function<bool(int tile, int total)> decode_progress;
  // Parity tests: latents after each step are appended here when not null.
  std::vector<float>* latent_trace = nullptr;
};

struct GenerateTimings {
  double text_encoder_ms = 0, denoise_ms = 0, step_ms_median = 0, decode_ms = 0, total_ms = 0;
  std::vector<double> step_ms;
};

class Context {
 public:
  static Result<std::unique_ptr<Context>> create(std::shared_ptr<const Engine> engine);

  // Merges the pair into the slot (style may be null with kSingle; both null
  // clears the slot). The LoRAs are read during the call only.
  Status set_loras(const LoraModel* content, const LoraModel* style, const ApplyOptions& options,
                   MergeTimings* timings);
  Status set_adapter(const Adapter& adapter);

  // RGB8, image_height x image_width x 3, into rgb (rgb_size bytes).
  Status generate(const GenerateOptions& options, uint8_t* rgb, size_t rgb_size, GenerateTimings* timings);
  // From any thread: the running generate stops after its current step.
  void cancel() { cancel_.store(true); }

  // The hypernetwork's coefficients for a pair (what set_loras folds).
  Result<ColumnCoefficients> hypernet_coefficients(const LoraModel& content, const LoraModel& style);

  const Engine& engine() const { return *engine_; }
  const std::vector<float>& slot_a() const { return lora_a_; }
  const std::vector<float>& slot_b() const { return lora_b_; }

 private:
  explicit Context(std::shared_ptr<const Engine> engine) : engine_(std::move(engine)) {}
  Status run(ProgramRunner& program, const std::string& method, const std::vector<TensorArg>& inputs,
             const std::vector<OutputArg>& outputs);
  Status encode_prompt(const std::string& prompt, float* out);
  // Latents (already divided by the scaling factor) -> the (3, H, W) image in
  // [-1, 1]: one program run, or tile by tile when the bundle has VAE tiling.
  Status decode(const std::vector<float>& latents, std::vector<float>& image,
                const std::function<bool(int, int)>& progress);
  // Runs one hypernetwork method on the pair's factors and adds its layers' coefficients to `out`.
  Status run_hypernet_method(const HypernetMethod& hm, const LoraModel& content, const LoraModel& style,
                             ColumnCoefficients& out);

  std::shared_ptr<const Engine> engine_;
  // Declared before the runners: their methods point into it.
  PlannedMemory planned_;
  std::unique_ptr<ProgramRunner> text_, unet_, vae_, hypernet_;
  std::string text_method_, unet_method_, vae_method_;
  std::vector<float> lora_a_, lora_b_;
  std::atomic<bool> cancel_{false};
};

}  // namespace lorarar
