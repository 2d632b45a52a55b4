// Files around merging: a merged adapter written as a standard LoRA that
// diffusers' load_lora_weights reads, and column-coefficient files.
//
// Coefficient files are safetensors with two 1-D float tensors per merged
// layer, "<module>.content" and "<module>.style", each of in_features entries.
#pragma once

#include <string>

#include "core/adapter.h"
#include "core/safetensors.h"
#include "extension/mapped_file.h"

namespace lorarar {

struct AdapterSaveOptions {
  DType dtype = DType::kF32;  // F32, F16 or BF16
};

// Writes unet.<module>.lora_A.weight (A') and .lora_B.weight (B') with the
// scales folded into A', and peft metadata giving alpha = rank per layer.
Status save_adapter(const Adapter& adapter, const std::string& path, const AdapterSaveOptions& options = {});

Result<ColumnCoefficients> load_coefficients(const std::string& path);
// The same from a parsed file; `path` names it in errors.
Result<ColumnCoefficients> parse_coefficients(const SafetensorsView& view, const std::string& path);
Status save_coefficients(const ColumnCoefficients& coefficients, const std::string& path);

}  // namespace lorarar
