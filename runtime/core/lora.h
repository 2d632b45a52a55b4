// LoRA files in the formats people have, mapped to canonical targets.
//
//   peft / diffusers   unet.<module>.lora_A.weight, .lora_B.weight; alpha from
//                      the safetensors metadata (lora_adapter_metadata) or a
//                      peft folder's adapter_config.json
//   legacy diffusers   unet.<module>.lora.down.weight, .lora.up.weight, also
//                      "unet.unet." (LoRA.rar / ZipLoRA code) and the older
//                      attention-processor names (attn1.processor.to_q_lora.*)
//   kohya / A1111      lora_unet_<module_with_underscores>.lora_down.weight,
//                      .lora_up.weight, .alpha; SD1.x diffusers names or
//                      SDXL's LDM block names (input_blocks_4_1_...)
//
// A layer maps to (module, A = down: r x in, B = up: out x r, scale) with
// dW = scale * B A. Text-encoder layers are listed, not applied. LoRA kinds the
// engine does not apply (LoCon k x k, LoHa, LoKr, DoRA, full diffs, biases)
// are errors: never half-applied.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/json.h"
#include "core/module_names.h"
#include "core/result.h"
#include "core/safetensors.h"

namespace lorarar {

enum class LoraFormat { kPeft, kDiffusersLegacy, kKohya };
const char* lora_format_name(LoraFormat f);  // "peft", "diffusers-legacy", "kohya"

struct LoraLayer {
  std::string module;      // diffusers module path in the base UNet
  std::string key_prefix;  // the tensor-name prefix in the file, for messages
  TensorView down;         // A: (rank, in) or (rank, in, 1, 1)
  TensorView up;           // B: (out, rank) or (out, rank, 1, 1)
  int64_t rank = 0;
  int64_t in_features = 0;
  int64_t out_features = 0;
  float alpha = 0;  // alpha = rank where the file carries none
  bool alpha_in_file = false;
  float scale = 1;  // alpha / rank (alpha / sqrt(rank) for rsLoRA)
  bool conv1x1 = false;
};

struct LoraModel {
  LoraFormat format = LoraFormat::kPeft;
  std::vector<LoraLayer> layers;                // sorted by module
  std::vector<std::string> text_encoder_keys;   // reported, not applied
  std::map<std::string, std::string> metadata;  // the file's __metadata__
  std::string source;  // the file (or name) it was read from, which prefixes errors about it; empty if none

  const LoraLayer* find(const std::string& module) const;
};

struct LoraParseOptions {
  // Maps names onto this model's layers and checks their shapes; without it
  // kohya names are mapped from the diffusers vocabulary and the SD layout.
  const BaseModel* base = nullptr;
  // A peft folder's adapter_config.json (lora_alpha, alpha_pattern, ...).
  const json::Value* adapter_config = nullptr;
  // Scan every factor for NaN / Inf (reads every byte once).
  bool check_values = true;
};

Result<LoraModel> parse_lora(const SafetensorsView& file, const LoraParseOptions& options = {});

}  // namespace lorarar
