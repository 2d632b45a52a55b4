// A bundle folder written by `lorarar export` (format "lorarar-bundle",
// version 1; export/BUNDLE.md): manifest.json, the programs, tokenizer and
// scheduler files. Opening it validates the manifest (and optionally every
// file's size and sha256) before anything is loaded.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.h"
#include "core/result.h"

namespace lorarar {

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  std::string dtype;  // "float32" | "int64"
  size_t numel() const;
};

struct MethodSpec {
  std::string name;
  std::string file;  // relative to the bundle folder
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
};

struct ProgramSpec {
  std::map<std::string, MethodSpec> methods;
  std::string data_file;  // external weights (.ptd), empty when inlined
  bool runs_on_host = false;
};

struct SlotLayer {
  std::string module;
  int64_t in_features = 0, out_features = 0, rank = 0, index = 0, a_offset = 0, b_offset = 0;
};

struct LoraSlot {
  int64_t max_rank = 0;
  size_t a_size = 0, b_size = 0;
  std::vector<SlotLayer> layers;  // slot order
  const SlotLayer* find(const std::string& module) const;
};

// One hypernetwork method: all merged layers of one (out, in) shape, their
// factors zero-padded to `rank`. A shape may have methods at several ranks.
struct HypernetMethod {
  std::string name;
  int64_t out_features = 0, in_features = 0, rank = 0;
  std::vector<std::string> layers;  // modules, in input order
};

struct HypernetSpec {
  int64_t rank = 0;                 // the largest method rank (the slot's max rank)
  std::vector<std::string> merged;  // leaf names merged column-wise (others summed)
  std::vector<HypernetMethod> methods;
  // The methods serving the same layers (one shape), as indices into
  // `methods`, smallest rank first: a merge runs the first that fits the pair.
  std::vector<std::vector<size_t>> ladders;
  bool is_merged(const std::string& module) const;
};

class Bundle {
 public:
  static constexpr int kFormatVersion = 1;

  // Reads dir/manifest.json, parses it, and with verify_checksums checks every
  // listed file's size and sha256.
  static Result<Bundle> open(const std::string& dir, bool verify_checksums);
  // The manifest's text alone, no file access (`dir` names paths in messages):
  // every field the engine reads is present, typed and within bounds, so the
  // engine can index and size buffers by it without checking again.
  static Result<Bundle> parse(const std::string& dir, std::string_view manifest_text);

  const std::string& dir() const { return dir_; }
  std::string path(const std::string& relative) const;

  std::string backend;       // e.g. "xnnpack"
  std::string format;        // "executorch" | "onnx" | "coreml"
  std::string quantization;  // e.g. "none"
  int image_width = 0, image_height = 0;
  int latent_channels = 0, latent_height = 0, latent_width = 0;
  float scaling_factor = 1.0f;
  // VAE tiling (export/BUNDLE.md): the decoder program takes one vae_tile x
  // vae_tile latent tile, neighbours overlapping by at least vae_tile_overlap;
  // 0: it takes the whole latent.
  int vae_tile = 0, vae_tile_overlap = 0;
  // Decoder program runs per image: the tiles (rows x columns), or 1.
  int vae_tiles() const;
  int text_max_length = 77;
  bool uncond_first = true;                        // guidance batch order [uncond, cond]
  std::string scheduler_config;                    // JSON text
  std::string tokenizer_vocab, tokenizer_merges;   // relative paths
  std::map<std::string, ProgramSpec> programs;     // text_encoder, unet, vae_decoder, hypernet
  std::map<std::string, std::string> file_sha256;  // relative path -> sha256 (hex), from the manifest
  std::map<std::string, int64_t> file_bytes;       // relative path -> size, from the manifest
  LoraSlot slot;
  bool has_hypernet = false;
  HypernetSpec hypernet;

 private:
  std::string dir_;
};

}  // namespace lorarar
