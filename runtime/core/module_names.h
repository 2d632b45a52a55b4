// Names of UNet modules in the conventions LoRA files use, and the base model's
// layer list they must map onto.
//
// diffusers / peft write dotted module paths ("down_blocks.1.attentions.0.
// transformer_blocks.0.attn1.to_q"). kohya / A1111 write the same path with
// every '.' turned into '_' ("lora_unet_down_blocks_1_attentions_0_..."), and
// for SDXL the original LDM block names ("input_blocks_4_1_transformer_
// blocks_0_attn1_to_q"), whose numbering depends on layers_per_block.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/json.h"
#include "core/result.h"
#include "core/safetensors.h"

namespace lorarar {

// A layer of the base UNet that a LoRA can target.
struct TargetLayer {
  std::string module;  // diffusers module path
  int64_t out_features = 0;
  int64_t in_features = 0;
  bool conv1x1 = false;  // weight is (out, in, 1, 1)
};

// The block layout of a diffusers UNet2DConditionModel, enough to translate
// LDM block indices: layers per down block (up blocks have one more).
struct UNetBlockLayout {
  std::vector<int> layers_per_block;  // one entry per down block
  static UNetBlockLayout sd_default() { return {{2, 2, 2, 2}}; }
};

class BaseModel {
 public:
  BaseModel() = default;
  BaseModel(std::vector<TargetLayer> targets, UNetBlockLayout layout);

  // From a diffusers UNet: config.json (down_block_types, layers_per_block)
  // and its weight tensors (every 2-D weight and 1x1 conv is a target).
  static Result<BaseModel> from_unet(const json::Value& config, const std::vector<TensorView>& weights);

  const std::vector<TargetLayer>& targets() const { return targets_; }
  const UNetBlockLayout& layout() const { return layout_; }
  const TargetLayer* find(std::string_view module) const;
  // Looks a module up by its kohya form (dots replaced by underscores).
  const TargetLayer* find_underscored(std::string_view name) const;

 private:
  std::vector<TargetLayer> targets_;
  UNetBlockLayout layout_;
  std::unordered_map<std::string, size_t> by_module_;
  std::unordered_map<std::string, size_t> by_underscored_;
};

std::string underscored(std::string_view dotted);

// Rewrites a leading LDM block name ("input_blocks_4_1_", "middle_block_1_",
// "output_blocks_3_1_") as the diffusers prefix ("down_blocks.1.attentions.1.")
// followed by the untouched remainder. Names without an LDM prefix come back
// unchanged; an index outside the layout is an error.
Result<std::string> ldm_to_diffusers_prefix(std::string_view name, const UNetBlockLayout& layout);

// Splits a kohya underscore name into a dotted diffusers path using the
// vocabulary of diffusers UNet module names; used when no base model is given.
Result<std::string> dotted_from_vocabulary(std::string_view name);

}  // namespace lorarar
