#include "engine/bundle.h"

#include <algorithm>

#include "core/sha256.h"
#include "core/tiling.h"
#include "extension/mapped_file.h"

namespace lorarar {

size_t TensorSpec::numel() const {
  size_t n = 1;
  for (int64_t d : shape) n *= static_cast<size_t>(d);
  return n;
}

const SlotLayer* LoraSlot::find(const std::string& module) const {
  for (const auto& l : layers) {
    if (l.module == module) return &l;
  }
  return nullptr;
}

bool HypernetSpec::is_merged(const std::string& module) const {
  return std::any_of(merged.begin(), merged.end(), [&](const std::string& leaf) {
    return module == leaf ||
           (module.size() > leaf.size() && module.compare(module.size() - leaf.size(), leaf.size(), leaf) == 0 &&
            module[module.size() - leaf.size() - 1] == '.');
  });
}

std::string Bundle::path(const std::string& relative) const { return join_path(dir_, relative); }

int Bundle::vae_tiles() const {
  if (vae_tile == 0) return 1;
  return static_cast<int>(tile_origins(latent_height, vae_tile, vae_tile_overlap).size() *
                          tile_origins(latent_width, vae_tile, vae_tile_overlap).size());
}

namespace {

// Ceilings on what a manifest may ask the engine to allocate: far above any
// Stable Diffusion model (SDXL's LoRA slot at rank 128 is ~10^8 floats).
constexpr int64_t kMaxElements = int64_t{1} << 36;
constexpr int64_t kMaxFeatures = int64_t{1} << 20;
constexpr int64_t kMaxRank = 4096;
constexpr int64_t kMaxSide = 1 << 16;

int64_t numel_of(const TensorSpec& t) { return static_cast<int64_t>(t.numel()); }

// Reads fields of the manifest, turning every missing or mistyped one into a
// message naming its path in the document ("manifest.json: model.image_size ...").
class Reader {
 public:
  explicit Reader(std::string file) : file_(std::move(file)) {}

  Status fail(const std::string& where, const std::string& what) const {
    return make_error(Error::kInvalidFile, file_ + ": " + where + " " + what);
  }
  Result<const json::Value*> get(const json::Value& obj, const std::string& key, const std::string& where) const {
    const json::Value* v = obj.find(key);
    if (!v) return fail(where + "." + key, "is missing");
    return v;
  }
  Result<std::string> str(const json::Value& obj, const std::string& key, const std::string& where) const {
    LORARAR_ASSIGN_OR_RETURN(const json::Value* v, get(obj, key, where));
    if (!v->is_string()) return fail(where + "." + key, "is not a string");
    return v->as_string();
  }
  Result<int64_t> integer(const json::Value& obj, const std::string& key, const std::string& where) const {
    LORARAR_ASSIGN_OR_RETURN(const json::Value* v, get(obj, key, where));
    if (!v->is_integer() || v->as_int() < 0) return fail(where + "." + key, "is not a non-negative integer");
    return v->as_int();
  }
  // An integer in [lo, hi]; manifests size buffers, so every count has a ceiling.
  Result<int64_t> bounded(const json::Value& obj, const std::string& key, const std::string& where, int64_t lo,
                          int64_t hi) const {
    LORARAR_ASSIGN_OR_RETURN(int64_t v, integer(obj, key, where));
    if (v < lo || v > hi) {
      return fail(where + "." + key,
                  "is " + std::to_string(v) + ", outside " + std::to_string(lo) + ".." + std::to_string(hi));
    }
    return v;
  }
  Result<std::vector<int64_t>> ints(const json::Value& obj, const std::string& key, const std::string& where) const {
    LORARAR_ASSIGN_OR_RETURN(const json::Value* v, get(obj, key, where));
    if (!v->is_array()) return fail(where + "." + key, "is not an array");
    std::vector<int64_t> out;
    for (const auto& x : v->as_array()) {
      if (!x.is_integer() || x.as_int() < 0) return fail(where + "." + key, "holds a non-integer");
      out.push_back(x.as_int());
    }
    return out;
  }
  Result<std::vector<TensorSpec>> specs(const json::Value& obj, const std::string& key,
                                        const std::string& where) const {
    LORARAR_ASSIGN_OR_RETURN(const json::Value* v, get(obj, key, where));
    if (!v->is_array()) return fail(where + "." + key, "is not an array");
    std::vector<TensorSpec> out;
    for (size_t i = 0; i < v->as_array().size(); ++i) {
      const auto& t = v->as_array()[i];
      const std::string w = where + "." + key + "[" + std::to_string(i) + "]";
      TensorSpec spec;
      LORARAR_ASSIGN_OR_RETURN(spec.name, str(t, "name", w));
      LORARAR_ASSIGN_OR_RETURN(spec.shape, ints(t, "shape", w));
      int64_t numel = 1;
      for (int64_t d : spec.shape) {
        if (d > kMaxElements || (d > 0 && numel > kMaxElements / d)) return fail(w + ".shape", "is too large");
        numel *= d;
      }
      LORARAR_ASSIGN_OR_RETURN(spec.dtype, str(t, "dtype", w));
      if (spec.dtype != "float32" && spec.dtype != "int64") return fail(w + ".dtype", "is not float32 or int64");
      out.push_back(std::move(spec));
    }
    if (out.empty()) return fail(where + "." + key, "is empty");
    return out;
  }

 private:
  std::string file_;
};

Status verify_files(const Bundle& bundle) {
  for (const auto& [rel, want] : bundle.file_sha256) {
    const std::string full = bundle.path(rel);
    const int64_t bytes = bundle.file_bytes.at(rel);
    auto map = MappedFile::open(full);
    if (!map.ok()) return map.status().with_context(full);
    if (static_cast<int64_t>(map.get()->size()) != bytes) {
      return make_error(Error::kInvalidFile, full + ": " + std::to_string(map.get()->size()) +
                                                 " bytes, manifest.json says " + std::to_string(bytes));
    }
    if (sha256_hex(map.get()->data(), map.get()->size()) != want) {
      return make_error(Error::kInvalidFile, full + ": sha256 does not match manifest.json");
    }
  }
  return Status::ok();
}

// The engine hands ExecuTorch views of its own buffers shaped as the manifest
// says, and packs LoRA factors by the hypernetwork methods' sizes: every one of
// those must agree with the buffer it describes, or a program would read past it.
Status check_buffers(const Bundle& b, const Reader& r) {
  const int64_t n = int64_t{b.latent_channels} * b.latent_height * b.latent_width;
  for (const auto& [name, spec] : b.programs.at("text_encoder").methods) {
    const std::string w = "programs.text_encoder.methods." + name;
    if (numel_of(spec.inputs[0]) != b.text_max_length) {
      return r.fail(w + ".inputs[0]", "holds " + std::to_string(numel_of(spec.inputs[0])) + " token ids, not " +
                                          std::to_string(b.text_max_length) + " (model.text_max_length)");
    }
  }
  // The decoder maps a latent (or a tile of one) to RGB at model.image_size / model.latent_shape.
  if (b.image_height % b.latent_height != 0 || b.image_width % b.latent_width != 0 ||
      b.image_height / b.latent_height != b.image_width / b.latent_width) {
    return r.fail("model.image_size", "is not one whole multiple of model.latent_shape on both axes");
  }
  const int64_t factor = b.image_height / b.latent_height;
  if (b.vae_tile > std::min(b.latent_height, b.latent_width)) {
    return r.fail("programs.vae_decoder.tiling.tile",
                  "is " + std::to_string(b.vae_tile) + ", larger than the latent (model.latent_shape)");
  }
  const int64_t tile = b.vae_tile, tile_px = tile * factor;
  const int64_t latent_in = tile ? int64_t{b.latent_channels} * tile * tile : n;
  const int64_t image_out = tile ? 3 * tile_px * tile_px : int64_t{3} * b.image_height * b.image_width;
  for (const auto& [name, spec] : b.programs.at("vae_decoder").methods) {
    const std::string w = "programs.vae_decoder.methods." + name;
    if (numel_of(spec.inputs[0]) != latent_in) {
      return r.fail(w + ".inputs[0]", tile ? "does not hold one tile of programs.vae_decoder.tiling"
                                           : "does not hold one latent of model.latent_shape");
    }
    if (numel_of(spec.outputs[0]) != image_out) {
      return r.fail(w + ".outputs[0]", tile ? "does not hold one RGB tile of programs.vae_decoder.tiling"
                                            : "does not hold one RGB image of model.image_size");
    }
  }
  for (const auto& [name, spec] : b.programs.at("unet").methods) {
    const std::string w = "programs.unet.methods." + name + ".inputs";
    if (spec.inputs.size() != 5) {
      return r.fail(w, "are not (sample, timestep, encoder_hidden_states, lora_a, lora_b)");
    }
    for (const auto& [text_name, text] : b.programs.at("text_encoder").methods) {
      if (numel_of(spec.inputs[2]) != 2 * numel_of(text.outputs[0])) {
        return r.fail(w + "[2]", "does not hold two of the text encoder's " + json::quote(text_name) + " outputs");
      }
    }
    const struct {
      size_t input;
      int64_t count;
      const char* what;
    } wanted[] = {{0, 2 * n, "two latents of model.latent_shape"},
                  {1, 2, "two timesteps"},
                  {3, static_cast<int64_t>(b.slot.a_size), "lora_slot's A factors"},
                  {4, static_cast<int64_t>(b.slot.b_size), "lora_slot's B factors"}};
    for (const auto& want : wanted) {
      if (numel_of(spec.inputs[want.input]) != want.count) {
        return r.fail(w + "[" + std::to_string(want.input) + "]", std::string("does not hold ") + want.what);
      }
    }
  }
  for (const auto& hm : b.hypernet.methods) {
    for (const auto& module : hm.layers) {
      const SlotLayer* s = b.slot.find(module);
      if (!s || s->in_features != hm.in_features || s->out_features != hm.out_features) {
        return r.fail("programs.hypernet.methods." + hm.name + ".layers",
                      "lists " + json::quote(module) + ", which is not a " + std::to_string(hm.in_features) + " -> " +
                          std::to_string(hm.out_features) + " layer of lora_slot");
      }
    }
  }
  return Status::ok();
}

}  // namespace

Result<Bundle> Bundle::open(const std::string& dir, bool verify_checksums) {
  const std::string manifest_path = join_path(dir, "manifest.json");
  if (!is_directory(dir)) return make_error(Error::kNotFound, dir + ": not a folder");
  if (!file_exists(manifest_path)) {
    return make_error(Error::kNotFound, dir + ": no manifest.json (not a bundle, or an unfinished export)");
  }
  LORARAR_ASSIGN_OR_RETURN(std::string text, read_text_file(manifest_path));
  LORARAR_ASSIGN_OR_RETURN(Bundle b, parse(dir, text));
  if (verify_checksums) LORARAR_RETURN_IF_ERROR(verify_files(b));
  return b;
}

Result<Bundle> Bundle::parse(const std::string& dir, std::string_view text) {
  Bundle b;
  b.dir_ = dir;
  const std::string manifest_path = join_path(dir, "manifest.json");
  auto parsed = json::parse(text);
  if (!parsed.ok()) return parsed.status().with_context(manifest_path);
  const json::Value& m = parsed.get();
  const Reader r(manifest_path);
  if (!m.is_object()) return r.fail("the document", "is not an object");
  LORARAR_ASSIGN_OR_RETURN(std::string format, r.str(m, "format", "manifest"));
  if (format != "lorarar-bundle") return r.fail("format", "is " + json::quote(format) + ", not \"lorarar-bundle\"");
  LORARAR_ASSIGN_OR_RETURN(int64_t version, r.integer(m, "format_version", "manifest"));
  if (version != kFormatVersion) {
    return make_error(Error::kUnsupported, manifest_path + ": format_version " + std::to_string(version) +
                                               ", this engine reads " + std::to_string(kFormatVersion));
  }
  LORARAR_ASSIGN_OR_RETURN(const json::Value* all_files, r.get(m, "files", "manifest"));
  if (!all_files->is_object()) return r.fail("files", "is not an object");
  for (const auto& [rel, entry] : all_files->as_object()) {
    if (rel.empty() || rel[0] == '/' || rel.find("..") != std::string::npos) {
      return r.fail("files", "lists a path outside the bundle: " + json::quote(rel));
    }
    LORARAR_ASSIGN_OR_RETURN(b.file_sha256[rel], r.str(entry, "sha256", "files." + rel));
    LORARAR_ASSIGN_OR_RETURN(b.file_bytes[rel], r.integer(entry, "bytes", "files." + rel));
  }

  LORARAR_ASSIGN_OR_RETURN(const json::Value* backend, r.get(m, "backend", "manifest"));
  LORARAR_ASSIGN_OR_RETURN(b.backend, r.str(*backend, "name", "backend"));
  LORARAR_ASSIGN_OR_RETURN(b.format, r.str(*backend, "format", "backend"));
  if (const json::Value* q = m.find("quantization"); q && q->find("mode") && q->find("mode")->is_string()) {
    b.quantization = q->find("mode")->as_string();
  }

  LORARAR_ASSIGN_OR_RETURN(const json::Value* model, r.get(m, "model", "manifest"));
  LORARAR_ASSIGN_OR_RETURN(auto image, r.ints(*model, "image_size", "model"));
  LORARAR_ASSIGN_OR_RETURN(auto latent, r.ints(*model, "latent_shape", "model"));
  if (image.size() != 2 || latent.size() != 3) return r.fail("model", "has malformed image_size or latent_shape");
  for (int64_t v : {image[0], image[1], latent[0], latent[1], latent[2]}) {
    if (v < 1 || v > kMaxSide)
      return r.fail("model", "has an image_size or latent_shape outside 1.." + std::to_string(kMaxSide));
  }
  b.image_height = static_cast<int>(image[0]);
  b.image_width = static_cast<int>(image[1]);
  b.latent_channels = static_cast<int>(latent[0]);
  b.latent_height = static_cast<int>(latent[1]);
  b.latent_width = static_cast<int>(latent[2]);
  LORARAR_ASSIGN_OR_RETURN(const json::Value* scale, r.get(*model, "scaling_factor", "model"));
  if (!scale->is_number()) return r.fail("model.scaling_factor", "is not a number");
  b.scaling_factor = static_cast<float>(scale->as_double());
  if (model->find("text_max_length")) {
    LORARAR_ASSIGN_OR_RETURN(int64_t max_length, r.bounded(*model, "text_max_length", "model", 2, 4096));
    b.text_max_length = static_cast<int>(max_length);
  }
  if (const json::Value* order = model->find("guidance_batch_order"); order && order->is_array()) {
    b.uncond_first =
        !order->as_array().empty() && order->as_array()[0].is_string() && order->as_array()[0].as_string() == "uncond";
  }

  LORARAR_ASSIGN_OR_RETURN(const json::Value* scheduler, r.get(m, "scheduler", "manifest"));
  LORARAR_ASSIGN_OR_RETURN(const json::Value* sched_config, r.get(*scheduler, "config", "scheduler"));
  b.scheduler_config = sched_config->dump();

  LORARAR_ASSIGN_OR_RETURN(const json::Value* tokenizers, r.get(m, "tokenizers", "manifest"));
  const json::Value* tok = tokenizers->find("tokenizer");
  if (!tok || !tok->find("files") || !tok->find("files")->is_array()) {
    return r.fail("tokenizers.tokenizer.files", "is missing");
  }
  for (const auto& f : tok->find("files")->as_array()) {
    if (!f.is_string()) continue;
    const std::string& s = f.as_string();
    if (s.size() >= 10 && s.compare(s.size() - 10, 10, "vocab.json") == 0) b.tokenizer_vocab = s;
    if (s.size() >= 10 && s.compare(s.size() - 10, 10, "merges.txt") == 0) b.tokenizer_merges = s;
  }
  if (b.tokenizer_vocab.empty() || b.tokenizer_merges.empty()) {
    return r.fail("tokenizers.tokenizer.files", "lacks vocab.json or merges.txt");
  }

  LORARAR_ASSIGN_OR_RETURN(const json::Value* programs, r.get(m, "programs", "manifest"));
  if (!programs->is_object()) return r.fail("programs", "is not an object");
  for (const auto& [name, entry] : programs->as_object()) {
    const std::string where = "programs." + name;
    ProgramSpec p;
    LORARAR_ASSIGN_OR_RETURN(const json::Value* files, r.get(entry, "files", where));
    LORARAR_ASSIGN_OR_RETURN(const json::Value* methods, r.get(entry, "methods", where));
    if (!files->is_object() || !methods->is_object()) return r.fail(where, "has malformed files or methods");
    for (const auto& [method, io] : methods->as_object()) {
      MethodSpec spec;
      spec.name = method;
      LORARAR_ASSIGN_OR_RETURN(spec.file, r.str(*files, method, where + ".files"));
      LORARAR_ASSIGN_OR_RETURN(spec.inputs, r.specs(io, "inputs", where + ".methods." + method));
      LORARAR_ASSIGN_OR_RETURN(spec.outputs, r.specs(io, "outputs", where + ".methods." + method));
      p.methods.emplace(method, std::move(spec));
    }
    if (const json::Value* data = entry.find("data_file"); data && data->is_string()) p.data_file = data->as_string();
    if (const json::Value* host = entry.find("runs_on_host"); host && host->is_bool()) p.runs_on_host = host->as_bool();
    if (const json::Value* tiling = entry.find("tiling"); name == "vae_decoder" && tiling) {
      LORARAR_ASSIGN_OR_RETURN(int64_t tile, r.bounded(*tiling, "tile", where + ".tiling", 1, kMaxSide));
      LORARAR_ASSIGN_OR_RETURN(int64_t overlap, r.bounded(*tiling, "overlap", where + ".tiling", 0, tile - 1));
      b.vae_tile = static_cast<int>(tile);
      b.vae_tile_overlap = static_cast<int>(overlap);
    }
    if (name == "hypernet") {
      b.has_hypernet = true;
      LORARAR_ASSIGN_OR_RETURN(b.hypernet.rank, r.bounded(entry, "rank", where, 1, kMaxRank));
      LORARAR_ASSIGN_OR_RETURN(const json::Value* config, r.get(entry, "config", where));
      LORARAR_ASSIGN_OR_RETURN(const json::Value* merged, r.get(*config, "merged", where + ".config"));
      if (!merged->is_array()) return r.fail(where + ".config.merged", "is not an array");
      for (const auto& leaf : merged->as_array()) {
        if (leaf.is_string()) b.hypernet.merged.push_back(leaf.as_string());
      }
      // Each method entry holds its I/O specs and the merged layers it serves.
      for (const auto& [method, info] : methods->as_object()) {
        const std::string w = where + ".methods." + method;
        HypernetMethod hm;
        hm.name = method;
        LORARAR_ASSIGN_OR_RETURN(hm.out_features, r.bounded(info, "out_features", w, 1, kMaxFeatures));
        LORARAR_ASSIGN_OR_RETURN(hm.in_features, r.bounded(info, "in_features", w, 1, kMaxFeatures));
        hm.rank = b.hypernet.rank;  // bundles before the rank ladder: every method at the max rank
        if (info.find("rank")) {
          LORARAR_ASSIGN_OR_RETURN(hm.rank, r.integer(info, "rank", w));
          if (hm.rank < 1 || hm.rank > b.hypernet.rank) {
            return r.fail(w + ".rank", "is " + std::to_string(hm.rank) + ", outside 1.." +
                                           std::to_string(b.hypernet.rank) + " (the hypernetwork's rank)");
          }
        }
        LORARAR_ASSIGN_OR_RETURN(const json::Value* mods, r.get(info, "layers", w));
        if (!mods->is_array()) return r.fail(w + ".layers", "is not an array");
        for (const auto& mod : mods->as_array()) {
          if (!mod.is_string()) return r.fail(w + ".layers", "holds a non-string");
          hm.layers.push_back(mod.as_string());
        }
        // The engine packs every layer's factors into one buffer per input.
        const auto layers = static_cast<int64_t>(hm.layers.size());
        if (layers * hm.rank * std::max(hm.in_features, hm.out_features) > kMaxElements) {
          return r.fail(w, "is too large");
        }
        b.hypernet.methods.push_back(std::move(hm));
      }
      const auto& all = b.hypernet.methods;
      for (size_t i = 0; i < all.size(); ++i) {
        auto ladder =
            std::find_if(b.hypernet.ladders.begin(), b.hypernet.ladders.end(),
                         [&](const std::vector<size_t>& l) { return all[l.front()].layers == all[i].layers; });
        if (ladder == b.hypernet.ladders.end()) {
          b.hypernet.ladders.push_back({i});
        } else {
          ladder->push_back(i);
        }
      }
      for (auto& ladder : b.hypernet.ladders) {
        std::sort(ladder.begin(), ladder.end(), [&](size_t x, size_t y) { return all[x].rank < all[y].rank; });
      }
    }
    b.programs.emplace(name, std::move(p));
  }
  for (const char* required : {"text_encoder", "unet", "vae_decoder"}) {
    if (!b.programs.count(required)) return r.fail("programs", std::string("has no ") + required);
  }

  LORARAR_ASSIGN_OR_RETURN(const json::Value* slot, r.get(m, "lora_slot", "manifest"));
  LORARAR_ASSIGN_OR_RETURN(b.slot.max_rank, r.bounded(*slot, "max_rank", "lora_slot", 1, kMaxRank));
  LORARAR_ASSIGN_OR_RETURN(const json::Value* layers, r.get(*slot, "layers", "lora_slot"));
  if (!layers->is_array()) return r.fail("lora_slot.layers", "is not an array");
  for (size_t i = 0; i < layers->as_array().size(); ++i) {
    const auto& l = layers->as_array()[i];
    const std::string w = "lora_slot.layers[" + std::to_string(i) + "]";
    SlotLayer s;
    LORARAR_ASSIGN_OR_RETURN(s.module, r.str(l, "module", w));
    LORARAR_ASSIGN_OR_RETURN(s.in_features, r.bounded(l, "in_features", w, 1, kMaxFeatures));
    LORARAR_ASSIGN_OR_RETURN(s.out_features, r.bounded(l, "out_features", w, 1, kMaxFeatures));
    LORARAR_ASSIGN_OR_RETURN(s.rank, r.bounded(l, "rank", w, 1, b.slot.max_rank));
    LORARAR_ASSIGN_OR_RETURN(s.a_offset, r.bounded(l, "a_offset", w, 0, kMaxElements));
    LORARAR_ASSIGN_OR_RETURN(s.b_offset, r.bounded(l, "b_offset", w, 0, kMaxElements));
    if (b.slot.find(s.module)) return r.fail(w + ".module", "repeats " + json::quote(s.module));
    s.index = static_cast<int64_t>(i);
    b.slot.a_size = std::max(b.slot.a_size, static_cast<size_t>(s.a_offset + s.rank * s.in_features));
    b.slot.b_size = std::max(b.slot.b_size, static_cast<size_t>(s.b_offset + s.out_features * s.rank));
    b.slot.layers.push_back(std::move(s));
  }
  LORARAR_RETURN_IF_ERROR(check_buffers(b, r));
  return b;
}

}  // namespace lorarar
