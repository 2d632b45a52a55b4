#include "engine/engine.h"

#include <executorch/extension/threadpool/threadpool_guard.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <optional>
#include <utility>

#include "core/random.h"
#include "core/tiling.h"
#include "extension/mapped_file.h"

namespace lorarar {

namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

std::vector<int32_t> shape_of(const TensorSpec& spec) {
  return std::vector<int32_t>(spec.shape.begin(), spec.shape.end());
}

// The single method of a program, or the one named `preferred`.
Result<const MethodSpec*> method_of(const ProgramSpec& p, const std::string& program, const char* preferred) {
  auto it = p.methods.find(preferred);
  if (it != p.methods.end()) return &it->second;
  if (p.methods.size() == 1) return &p.methods.begin()->second;
  return make_error(Error::kInvalidFile, "manifest.json: program " + program + " has no method " + preferred);
}

std::vector<std::string> methods_of(const ProgramSpec& p) {
  std::vector<std::string> methods;
  for (const auto& [m, spec] : p.methods) methods.push_back(m);
  return methods;
}

// Opens a program (its methods are loaded later, into the context's planned
// memory) and reserves what its methods need there.
Result<std::unique_ptr<ProgramRunner>> open_program(const Bundle& b, const std::string& name, Workspace workspace,
                                                    const std::string& packed_cache_dir, PlannedMemory& planned) {
  const ProgramSpec& p = b.programs.at(name);
  std::string file;
  for (const auto& [m, spec] : p.methods) {
    if (!file.empty() && spec.file != file) {
      return make_error(Error::kUnsupported, b.path(spec.file) + ": programs split over several files are not read");
    }
    file = spec.file;
  }
  std::string packed_cache;
  if (!packed_cache_dir.empty() && b.backend == "xnnpack") {
    // Named by the program's sha256: a new bundle never maps another's packed weights.
    auto sha = b.file_sha256.find(file);
    if (sha == b.file_sha256.end()) {
      return make_error(Error::kInvalidFile, b.path("manifest.json") + ": files lists no sha256 of " + file);
    }
    packed_cache = join_path(packed_cache_dir, "lorarar-" + sha->second + ".xnnpack");
  }
  LORARAR_ASSIGN_OR_RETURN(std::unique_ptr<ProgramRunner> runner,
                           ProgramRunner::open_program(b.path(file), p.data_file.empty() ? "" : b.path(p.data_file),
                                                       workspace, packed_cache));
  LORARAR_ASSIGN_OR_RETURN(std::vector<size_t> sizes, runner->planned_sizes(methods_of(p)));
  planned.reserve(sizes);
  return runner;
}

}  // namespace

Result<std::shared_ptr<const Engine>> Engine::load(const std::string& bundle_dir, const EngineOptions& options) {
  if (options.n_threads < 0) return make_error(Error::kInvalidArgument, "n_threads must be >= 0");
  if (!options.packed_cache_dir.empty() && !is_directory(options.packed_cache_dir)) {
    return make_error(Error::kNotFound, options.packed_cache_dir + ": packed_cache_dir is not a folder");
  }
  LORARAR_ASSIGN_OR_RETURN(Bundle bundle, Bundle::open(bundle_dir, options.verify_checksums));
  if (bundle.format != "executorch") {
    return make_error(
        Error::kUnsupported,
        bundle_dir + ": a " + bundle.format + " bundle; the native engine runs ExecuTorch bundles (--backend xnnpack)");
  }
  for (const auto& [name, p] : bundle.programs) {
    if (!p.runs_on_host) {
      return make_error(Error::kUnsupported, bundle_dir + ": program " + name + " is lowered for " + bundle.backend +
                                                 ", which this device cannot run");
    }
  }
  LORARAR_ASSIGN_OR_RETURN(std::string vocab, read_text_file(bundle.path(bundle.tokenizer_vocab)));
  LORARAR_ASSIGN_OR_RETURN(std::string merges, read_text_file(bundle.path(bundle.tokenizer_merges)));
  ClipTokenizer::Options tok_options;
  tok_options.max_length = bundle.text_max_length;
  auto tokenizer = ClipTokenizer::create(vocab, merges, tok_options);
  if (!tokenizer.ok()) return tokenizer.status().with_context(bundle.path(bundle.tokenizer_vocab));
  // Scheduler configs are checked once here, so generate() cannot fail on them.
  for (SchedulerKind kind : {SchedulerKind::kDdim, SchedulerKind::kEuler, SchedulerKind::kLcm}) {
    auto s = Scheduler::create(kind, bundle.scheduler_config);
    if (!s.ok()) return s.status().with_context(bundle.path("scheduler/scheduler_config.json"));
  }
  return std::shared_ptr<const Engine>(new Engine(std::move(bundle), std::move(tokenizer).get(), options));
}

Status Engine::check_lora(const LoraModel& lora) const {
  Status s = check_lora_layers(lora);
  return lora.source.empty() ? s : s.with_context(lora.source);
}

Status Engine::check_lora_layers(const LoraModel& lora) const {
  for (const auto& layer : lora.layers) {
    const SlotLayer* slot = bundle_.slot.find(layer.module);
    if (!slot) {
      return make_error(Error::kNotFound, "layer " + json::quote(layer.module) + " is not in the bundle's LoRA slot");
    }
    if (slot->in_features != layer.in_features || slot->out_features != layer.out_features) {
      return make_error(Error::kInvalidArgument,
                        "layer " + json::quote(layer.module) + " is " + std::to_string(layer.in_features) + " -> " +
                            std::to_string(layer.out_features) + ", the bundle's is " +
                            std::to_string(slot->in_features) + " -> " + std::to_string(slot->out_features));
    }
    if (layer.rank > slot->rank) {
      return make_error(Error::kInvalidArgument, "layer " + json::quote(layer.module) + " has rank " +
                                                     std::to_string(layer.rank) + ", above the slot's max rank " +
                                                     std::to_string(slot->rank) + " (export with a larger --max-rank)");
    }
  }
  return Status::ok();
}

Result<std::unique_ptr<Context>> Context::create(std::shared_ptr<const Engine> engine) {
  std::unique_ptr<Context> ctx(new Context(std::move(engine)));
  const Bundle& b = ctx->engine_->bundle();
  // A context runs one program at a time and copies every output out, so all
  // its programs plan their activations into the same buffers.
  const Workspace workspace = ctx->engine_->options().parallel_contexts ? Workspace::kPerProgram : Workspace::kShared;
  PlannedMemory& planned = ctx->planned_;
  const std::string& cache = ctx->engine_->options().packed_cache_dir;
  LORARAR_ASSIGN_OR_RETURN(ctx->text_, open_program(b, "text_encoder", workspace, cache, planned));
  LORARAR_ASSIGN_OR_RETURN(ctx->unet_, open_program(b, "unet", workspace, cache, planned));
  LORARAR_ASSIGN_OR_RETURN(ctx->vae_, open_program(b, "vae_decoder", workspace, cache, planned));
  if (b.has_hypernet) {
    LORARAR_ASSIGN_OR_RETURN(ctx->hypernet_, open_program(b, "hypernet", workspace, cache, planned));
  }
  planned.allocate();
  const std::pair<const char*, ProgramRunner*> programs[] = {{"text_encoder", ctx->text_.get()},
                                                             {"unet", ctx->unet_.get()},
                                                             {"vae_decoder", ctx->vae_.get()},
                                                             {"hypernet", ctx->hypernet_.get()}};
  for (const auto& [name, runner] : programs) {
    if (runner) LORARAR_RETURN_IF_ERROR(runner->load_methods(methods_of(b.programs.at(name)), &planned));
  }
  LORARAR_ASSIGN_OR_RETURN(const MethodSpec* text, method_of(b.programs.at("text_encoder"), "text_encoder", "forward"));
  LORARAR_ASSIGN_OR_RETURN(const MethodSpec* unet, method_of(b.programs.at("unet"), "unet", "forward"));
  LORARAR_ASSIGN_OR_RETURN(const MethodSpec* vae, method_of(b.programs.at("vae_decoder"), "vae_decoder", "forward"));
  ctx->text_method_ = text->name;
  ctx->unet_method_ = unet->name;
  ctx->vae_method_ = vae->name;
  ctx->lora_a_.assign(b.slot.a_size, 0.0f);
  ctx->lora_b_.assign(b.slot.b_size, 0.0f);
  return ctx;
}

Status Context::run(ProgramRunner& program, const std::string& method, const std::vector<TensorArg>& inputs,
                    const std::vector<OutputArg>& outputs) {
  if (engine_->options().n_threads == 1) {
    executorch::extension::threadpool::NoThreadPoolGuard single_threaded;
    return program.run(method, inputs, outputs);
  }
  return program.run(method, inputs, outputs);
}

Status Context::decode(const std::vector<float>& latents, std::vector<float>& image,
                       const std::function<bool(int, int)>& progress) {
  const Bundle& b = engine_->bundle();
  const MethodSpec& vae = b.programs.at("vae_decoder").methods.at(vae_method_);
  // After each decoder run: the caller's report, then the cancel flag.
  const auto keep_going = [&](size_t done, size_t total) {
    return (!progress || progress(static_cast<int>(done), static_cast<int>(total))) && !cancel_.load();
  };
  if (b.vae_tile == 0) {
    LORARAR_RETURN_IF_ERROR(
        run(*vae_, vae_method_, {{latents.data(), shape_of(vae.inputs.at(0))}}, {{image.data(), image.size()}}));
    if (!keep_going(1, 1)) return make_error(Error::kCancelled, "generation cancelled");
    return Status::ok();
  }
  // Tile by tile through the one program (Bundle::parse checked the tile fits the latent and the program's shapes).
  const int64_t channels = b.latent_channels, h = b.latent_height, w = b.latent_width, tile = b.vae_tile;
  const int64_t factor = b.image_height / b.latent_height, side = tile * factor;
  const auto rows = tile_origins(h, tile, b.vae_tile_overlap), cols = tile_origins(w, tile, b.vae_tile_overlap);
  const auto ramp_rows = tile_ramps(rows, tile, factor), ramp_cols = tile_ramps(cols, tile, factor);
  std::vector<float> tile_in(static_cast<size_t>(channels * tile * tile)),
      tile_out(static_cast<size_t>(3 * side * side));
  TileBlend blend(3, b.image_height, b.image_width);
  for (size_t i = 0; i < rows.size(); ++i) {
    for (size_t j = 0; j < cols.size(); ++j) {
      for (int64_t c = 0; c < channels; ++c) {
        for (int64_t y = 0; y < tile; ++y) {
          std::memcpy(tile_in.data() + (c * tile + y) * tile, latents.data() + (c * h + rows[i] + y) * w + cols[j],
                      static_cast<size_t>(tile) * sizeof(float));
        }
      }
      LORARAR_RETURN_IF_ERROR(run(*vae_, vae_method_, {{tile_in.data(), shape_of(vae.inputs.at(0))}},
                                  {{tile_out.data(), tile_out.size()}}));
      blend.add(tile_out.data(), side, rows[i] * factor, cols[j] * factor, ramp_rows[i], ramp_cols[j]);
      if (!keep_going(i * cols.size() + j + 1, rows.size() * cols.size())) {
        return make_error(Error::kCancelled, "generation cancelled");
      }
    }
  }
  blend.finish(image.data());
  return Status::ok();
}

Result<ColumnCoefficients> Context::hypernet_coefficients(const LoraModel& content, const LoraModel& style) {
  const Bundle& b = engine_->bundle();
  if (!hypernet_) return make_error(Error::kUnsupported, b.dir() + ": the bundle has no hypernetwork program");
  // The work is linear in the padded rank: per shape, run the smallest method that holds the pair's largest rank
  // on those layers (the ladders are built once, at bundle load).
  ColumnCoefficients out;
  for (const auto& ladder : b.hypernet.ladders) {
    int64_t need = 0;
    for (const auto& module : b.hypernet.methods[ladder.front()].layers) {
      for (const LoraModel* lora : {&content, &style}) {
        if (const LoraLayer* layer = lora->find(module)) need = std::max(need, layer->rank);
      }
    }
    const HypernetMethod* chosen = &b.hypernet.methods[ladder.back()];
    for (size_t i : ladder) {
      if (b.hypernet.methods[i].rank >= need) {
        chosen = &b.hypernet.methods[i];
        break;
      }
    }
    LORARAR_RETURN_IF_ERROR(run_hypernet_method(*chosen, content, style, out));
  }
  return out;
}

Status Context::run_hypernet_method(const HypernetMethod& hm, const LoraModel& content, const LoraModel& style,
                                    ColumnCoefficients& out) {
  const int64_t r = hm.rank;
  const int64_t L = static_cast<int64_t>(hm.layers.size()), n_in = hm.in_features, n_out = hm.out_features;
  std::vector<float> down_c(static_cast<size_t>(L * r * n_in), 0.0f), up_c(static_cast<size_t>(L * n_out * r), 0.0f);
  std::vector<float> down_s(down_c.size(), 0.0f), up_s(up_c.size(), 0.0f);
  std::vector<bool> both(static_cast<size_t>(L), false);
  for (int64_t i = 0; i < L; ++i) {
    const LoraLayer* c = content.find(hm.layers[static_cast<size_t>(i)]);
    const LoraLayer* s = style.find(hm.layers[static_cast<size_t>(i)]);
    both[static_cast<size_t>(i)] = c && s;
    for (auto [layer, down, up] : {std::tuple{c, &down_c, &up_c}, std::tuple{s, &down_s, &up_s}}) {
      if (!layer) continue;
      if (layer->rank > r) {
        return make_error(Error::kInvalidArgument, "layer " + json::quote(layer->module) + " has rank " +
                                                       std::to_string(layer->rank) + ", above the hypernetwork's " +
                                                       std::to_string(r));
      }
      // The published hypernetwork reads dW = scale * B A: fold the LoRA's scale into A.
      AdapterLayer view;
      view.module = layer->module;
      view.in_features = n_in;
      view.out_features = n_out;
      view.parts.push_back({layer->down, layer->up, layer->rank, layer->scale, {}});
      view.pack_a(0, layer->rank, 0, n_in, down->data() + i * r * n_in, n_in);
      view.pack_b(up->data() + i * n_out * r, r);
    }
  }
  std::vector<float> m(static_cast<size_t>(L * 2 * n_in));
  const std::vector<int32_t> ds = {static_cast<int32_t>(L), static_cast<int32_t>(r), static_cast<int32_t>(n_in)};
  const std::vector<int32_t> us = {static_cast<int32_t>(L), static_cast<int32_t>(n_out), static_cast<int32_t>(r)};
  LORARAR_RETURN_IF_ERROR(run(*hypernet_, hm.name,
                              {{down_c.data(), ds}, {up_c.data(), us}, {down_s.data(), ds}, {up_s.data(), us}},
                              {{m.data(), m.size()}}));
  for (int64_t i = 0; i < L; ++i) {
    if (!both[static_cast<size_t>(i)]) continue;
    const float* row = m.data() + i * 2 * n_in;
    out[hm.layers[static_cast<size_t>(i)]] = {std::vector<float>(row, row + n_in),
                                              std::vector<float>(row + n_in, row + 2 * n_in)};
  }
  return Status::ok();
}

Status Context::set_adapter(const Adapter& adapter) {
  const LoraSlot& slot = engine_->bundle().slot;
  for (const auto& layer : adapter.layers) {  // validate everything before touching the buffers
    const SlotLayer* s = slot.find(layer.module);
    if (!s)
      return make_error(Error::kNotFound, "layer " + json::quote(layer.module) + " is not in the bundle's LoRA slot");
    if (s->in_features != layer.in_features || s->out_features != layer.out_features) {
      return make_error(Error::kInvalidArgument, "layer " + json::quote(layer.module) + " does not fit its slot");
    }
    if (layer.rank() > s->rank) {
      return make_error(Error::kInvalidArgument, "the merge of " + json::quote(layer.module) + " has rank " +
                                                     std::to_string(layer.rank()) + ", above the slot's max rank " +
                                                     std::to_string(s->rank) + " (export with a larger --max-rank)");
    }
  }
  std::fill(lora_a_.begin(), lora_a_.end(), 0.0f);
  std::fill(lora_b_.begin(), lora_b_.end(), 0.0f);
  for (const auto& layer : adapter.layers) {
    const SlotLayer* s = slot.find(layer.module);
    layer.pack_a(0, layer.rank(), 0, layer.in_features, lora_a_.data() + s->a_offset, layer.in_features);
    layer.pack_b(lora_b_.data() + s->b_offset, s->rank);
  }
  return Status::ok();
}

Status Context::set_loras(const LoraModel* content, const LoraModel* style, const ApplyOptions& options,
                          MergeTimings* timings) {
  const auto start = Clock::now();
  MergeTimings t;
  if (!content && !style) {
    std::fill(lora_a_.begin(), lora_a_.end(), 0.0f);
    std::fill(lora_b_.begin(), lora_b_.end(), 0.0f);
  } else if (options.method == ApplyMethod::kSingle || !content || !style) {
    if (options.method != ApplyMethod::kSingle) {
      return make_error(Error::kInvalidArgument, "merging needs both a content and a style LoRA");
    }
    const LoraModel* one = content ? content : style;
    LORARAR_RETURN_IF_ERROR(engine_->check_lora(*one));
    LORARAR_RETURN_IF_ERROR(set_adapter(single_adapter(*one, content ? options.content_scale : options.style_scale)));
  } else {
    LORARAR_RETURN_IF_ERROR(engine_->check_lora(*content));
    LORARAR_RETURN_IF_ERROR(engine_->check_lora(*style));
    MergeOptions merge_options;
    merge_options.content_scale = options.content_scale;
    merge_options.style_scale = options.style_scale;
    ColumnCoefficients coefficients;
    if (options.method == ApplyMethod::kHypernet) {
      const auto h = Clock::now();
      LORARAR_ASSIGN_OR_RETURN(coefficients, hypernet_coefficients(*content, *style));
      t.hypernet_ms = ms_since(h);
      merge_options.method = MergeMethod::kColumns;
      merge_options.coefficients = &coefficients;
    }
    const auto f = Clock::now();
    LORARAR_ASSIGN_OR_RETURN(Adapter adapter, merge(*content, *style, merge_options));
    LORARAR_RETURN_IF_ERROR(set_adapter(adapter));
    t.fold_ms = ms_since(f);
  }
  t.total_ms = ms_since(start);
  if (timings) *timings = t;
  return Status::ok();
}

Status Context::encode_prompt(const std::string& prompt, float* out) {
  const Bundle& b = engine_->bundle();
  const MethodSpec& m = b.programs.at("text_encoder").methods.at(text_method_);
  std::vector<int32_t> ids32 = engine_->tokenizer().encode(prompt);
  std::vector<int64_t> ids(ids32.begin(), ids32.end());
  std::vector<std::vector<float>> extra;
  std::vector<OutputArg> outputs = {{out, m.outputs.at(0).numel()}};
  for (size_t i = 1; i < m.outputs.size(); ++i) {  // pooled output (SDXL): not used by SD 1.x UNets
    extra.emplace_back(m.outputs[i].numel());
    outputs.push_back({extra.back().data(), extra.back().size()});
  }
  return run(*text_, text_method_, {{ids.data(), shape_of(m.inputs.at(0)), ScalarKind::kInt64}}, outputs);
}

Status Context::generate(const GenerateOptions& options, uint8_t* rgb, size_t rgb_size, GenerateTimings* timings) {
  const auto start = Clock::now();
  const Bundle& b = engine_->bundle();
  const size_t pixels = static_cast<size_t>(b.image_width) * static_cast<size_t>(b.image_height);
  if (!rgb || rgb_size < pixels * 3) {
    return make_error(Error::kInvalidArgument, "the output buffer needs " + std::to_string(pixels * 3) + " bytes");
  }
  if (options.steps < 1 || options.steps > 1000) return make_error(Error::kInvalidArgument, "steps must be 1..1000");
  if (!std::isfinite(options.guidance)) return make_error(Error::kInvalidArgument, "guidance must be finite");
  cancel_.store(false);
  GenerateTimings t;

  const MethodSpec& unet = b.programs.at("unet").methods.at(unet_method_);
  const MethodSpec& text = b.programs.at("text_encoder").methods.at(text_method_);
  const size_t emb_size = text.outputs.at(0).numel();
  // Bundle::parse checked these shapes against the buffers below (their sizes come from the same manifest).
  // Classifier-free guidance batch: [uncond, cond] (or the order the manifest gives).
  std::vector<float> embeddings(2 * emb_size);
  const auto te = Clock::now();
  float* cond = embeddings.data() + (b.uncond_first ? emb_size : 0);
  float* uncond = embeddings.data() + (b.uncond_first ? 0 : emb_size);
  LORARAR_RETURN_IF_ERROR(encode_prompt(options.prompt, cond));
  if (options.guidance > 1.0f) {
    LORARAR_RETURN_IF_ERROR(encode_prompt(options.negative_prompt, uncond));
  } else {
    std::memcpy(uncond, cond, emb_size * sizeof(float));
  }
  t.text_encoder_ms = ms_since(te);
  if (cancel_.load()) return make_error(Error::kCancelled, "generation cancelled");

  LORARAR_ASSIGN_OR_RETURN(auto scheduler, Scheduler::create(options.scheduler, b.scheduler_config));
  LORARAR_RETURN_IF_ERROR(scheduler->set_timesteps(options.steps));
  const size_t n = static_cast<size_t>(b.latent_channels) * static_cast<size_t>(b.latent_height) *
                   static_cast<size_t>(b.latent_width);
  // Noise layout: the initial latents are elements [0, n) of the seed's
  // stream, the noise step i draws is [n (i + 1), n (i + 2)).
  std::vector<float> latents(n), noise(n), model_in(2 * n), eps(2 * n);
  GaussianNoise(options.seed, 0).fill(latents.data(), n);
  const float sigma = scheduler->init_noise_sigma();
  for (float& v : latents) v *= sigma;
  const auto denoise = Clock::now();
  const int total = scheduler->num_inference_steps();
  for (int i = 0; i < total; ++i) {
    const auto step_start = Clock::now();
    std::memcpy(model_in.data(), latents.data(), n * sizeof(float));
    LORARAR_RETURN_IF_ERROR(scheduler->scale_model_input(model_in.data(), n, i));
    std::memcpy(model_in.data() + n, model_in.data(), n * sizeof(float));
    const float ts[2] = {scheduler->timesteps()[static_cast<size_t>(i)],
                         scheduler->timesteps()[static_cast<size_t>(i)]};
    LORARAR_RETURN_IF_ERROR(run(*unet_, unet_method_,
                                {{model_in.data(), shape_of(unet.inputs[0])},
                                 {ts, shape_of(unet.inputs[1])},
                                 {embeddings.data(), shape_of(unet.inputs[2])},
                                 {lora_a_.data(), shape_of(unet.inputs[3])},
                                 {lora_b_.data(), shape_of(unet.inputs[4])}},
                                {{eps.data(), eps.size()}}));
    const float* eps_u = eps.data() + (b.uncond_first ? 0 : n);
    const float* eps_c = eps.data() + (b.uncond_first ? n : 0);
    float* guided = model_in.data();
    if (options.guidance > 1.0f) {
      for (size_t k = 0; k < n; ++k) guided[k] = eps_u[k] + options.guidance * (eps_c[k] - eps_u[k]);
    } else {
      std::memcpy(guided, eps_c, n * sizeof(float));
    }
    const float* step_noise = nullptr;
    if (scheduler->step_needs_noise(i)) {
      GaussianNoise(options.seed, static_cast<uint64_t>(n) * static_cast<uint64_t>(i + 1)).fill(noise.data(), n);
      step_noise = noise.data();
    }
    LORARAR_RETURN_IF_ERROR(scheduler->step(guided, latents.data(), n, i, step_noise));
    if (options.latent_trace) options.latent_trace->insert(options.latent_trace->end(), latents.begin(), latents.end());
    t.step_ms.push_back(ms_since(step_start));
    const bool keep_going = !options.progress || options.progress(i + 1, total);
    if (!keep_going || cancel_.load()) return make_error(Error::kCancelled, "generation cancelled");
  }
  t.denoise_ms = ms_since(denoise);

  const auto dec = Clock::now();
  for (float& v : latents) v /= b.scaling_factor;
  std::vector<float> image(pixels * 3);
  LORARAR_RETURN_IF_ERROR(decode(latents, image, options.decode_progress));
  // (1, 3, H, W) in [-1, 1] -> H x W x RGB8, rounding as diffusers' numpy_to_pil does.
  for (size_t c = 0; c < 3; ++c) {
    for (size_t p = 0; p < pixels; ++p) {
      const float v = std::clamp(image[c * pixels + p] / 2.0f + 0.5f, 0.0f, 1.0f);
      rgb[p * 3 + c] = static_cast<uint8_t>(std::nearbyint(v * 255.0f));
    }
  }
  t.decode_ms = ms_since(dec);
  std::vector<double> sorted = t.step_ms;
  std::sort(sorted.begin(), sorted.end());
  t.step_ms_median = sorted.empty() ? 0.0 : sorted[sorted.size() / 2];
  t.total_ms = ms_since(start);
  if (timings) *timings = std::move(t);
  return Status::ok();
}

}  // namespace lorarar
