// libFuzzer target for everything that reads untrusted LoRA bytes: the
// safetensors reader, the JSON header parser, format detection and name
// mapping (with and without a base model), the merge, and materialising A'.
// Built by `make fuzz` with clang-14; seeds in tests/fuzz/corpus.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "core/adapter.h"
#include "core/json.h"
#include "core/lora.h"
#include "core/safetensors.h"

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

void exercise(const lorarar::LoraModel& model) {
  auto adapter = lorarar::merge(model, model, {});
  if (!adapter.ok()) return;
  for (const auto& layer : adapter->layers) {
    const int64_t r = layer.rank();
    if (r * layer.in_features > (1 << 20) || layer.out_features * r > (1 << 20)) continue;
    std::vector<float> a(static_cast<size_t>(r * layer.in_features)), b(static_cast<size_t>(layer.out_features * r));
    layer.pack_a(0, r, 0, layer.in_features, a.data(), layer.in_features);
    layer.pack_b(b.data());
  }
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
  return 0;
}
