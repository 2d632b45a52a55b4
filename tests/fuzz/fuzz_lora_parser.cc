// libFuzzer target for everything that reads untrusted LoRA bytes: the
// safetensors reader, the JSON header parser, format detection and name
// mapping (with and without a base model), the merge, and materialising A';
// and for column-coefficient files (lorarar_coeffs_load),
// merged into the seed LoRA pair's layers.
// Built by `make fuzz` with clang-14; seeds in tests/fuzz/corpus.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "core/adapter.h"
#include "core/json.h"
#include "core/lora.h"
#include "core/safetensors.h"
#include "extension/adapter_io.h"

namespace {

const lorarar::BaseModel& fuzz_base() {
  static const lorarar::BaseModel base(
      {
          {"down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q", 8, 8, false},
          {"down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k", 8, 12, false},
          {"mid_block.attentions.0.transformer_blocks.0.attn1.to_out.0", 16, 16, false},
          {"up_blocks.0.attentions.1.proj_in", 16, 16, true},
      },
      lorarar::UNetBlockLayout{{2, 2}});
  return base;
}

void exercise(const lorarar::LoraModel& model, const lorarar::MergeOptions& options = {}) {
  auto adapter = lorarar::merge(model, model, options);
  if (!adapter.ok()) return;
  for (const auto& layer : adapter->layers) {
    const int64_t r = layer.rank();
    if (r * layer.in_features > (1 << 20) || layer.out_features * r > (1 << 20)) continue;
    std::vector<float> a(static_cast<size_t>(r * layer.in_features)), b(static_cast<size_t>(layer.out_features * r));
    layer.pack_a(0, r, 0, layer.in_features, a.data(), layer.in_features);
    layer.pack_b(b.data());
  }
}

// The LoRA the coefficient files are merged into: peft, rank 2, on to_q
// (8 -> 8) and attn2.to_k (12 -> 8), the layers the seed coefficient files
// (tests/fuzz/make_corpus.py) address.
const lorarar::LoraModel& coefficient_target() {
  static const std::vector<uint8_t> bytes = [] {
    const std::string q = "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q";
    const std::string k = "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k";
    const std::vector<lorarar::SafetensorsEntry> entries = {
        {"unet." + q + ".lora_A.weight", lorarar::DType::kF32, {2, 8}},
        {"unet." + q + ".lora_B.weight", lorarar::DType::kF32, {8, 2}},
        {"unet." + k + ".lora_A.weight", lorarar::DType::kF32, {2, 12}},
        {"unet." + k + ".lora_B.weight", lorarar::DType::kF32, {8, 2}},
    };
    const lorarar::SafetensorsLayout layout = lorarar::safetensors_layout(entries, {});
    std::vector<uint8_t> out(layout.header.begin(), layout.header.end());
    for (size_t i = 0; i < layout.data_bytes / sizeof(float); ++i) {
      const float v = 0.01f * static_cast<float>(i % 17) - 0.08f;
      const auto* p = reinterpret_cast<const uint8_t*>(&v);
      out.insert(out.end(), p, p + sizeof(float));
    }
    return out;
  }();
  static const lorarar::LoraModel model = [] {
    auto view = lorarar::SafetensorsView::parse(bytes.data(), bytes.size());
    return lorarar::parse_lora(view.get(), {}).get();
  }();
  return model;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)lorarar::json::parse(std::string_view(reinterpret_cast<const char*>(data), size));
  auto view = lorarar::SafetensorsView::parse(data, size);
  if (!view.ok()) return 0;
  for (const lorarar::BaseModel* base : {static_cast<const lorarar::BaseModel*>(nullptr), &fuzz_base()}) {
    lorarar::LoraParseOptions options;
    options.base = base;
    auto model = lorarar::parse_lora(view.get(), options);
    if (model.ok()) exercise(model.get());
  }
  auto coefficients = lorarar::parse_coefficients(view.get(), "fuzz.safetensors");
  if (coefficients.ok()) {
    lorarar::MergeOptions merge;
    merge.method = lorarar::MergeMethod::kColumns;
    merge.coefficients = &coefficients.get();
    exercise(coefficient_target(), merge);
  }
  return 0;
}
