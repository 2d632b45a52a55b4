// Loading LoRAs from disk: a .safetensors file, or a folder as peft
// (adapter_model.safetensors + adapter_config.json) or diffusers
// (pytorch_lora_weights.safetensors) save it. The parsed model views the
// file's memory map, which LoraFile keeps alive. Errors name the file:
// "<path>: <what is wrong>".
#pragma once

#include <memory>
#include <string>

#include "core/lora.h"
#include "extension/mapped_file.h"

namespace lorarar {

class LoraFile {
 public:
  struct Options {
    const BaseModel* base = nullptr;
    bool check_values = true;
  };
  static Result<std::shared_ptr<const LoraFile>> load(const std::string& path, const Options& options);
  // The same formats from bytes in memory (a .safetensors file's contents),
  // copied, so the caller may free them. `name` stands for the path in errors;
  // `adapter_config_json` (may be empty) is a peft adapter_config.json.
  static Result<std::shared_ptr<const LoraFile>> from_memory(const void* data, size_t size, const std::string& name,
                                                             const std::string& adapter_config_json,
                                                             const Options& options);

  const LoraModel& model() const { return model_; }
  // The file the tensors came from (inside the folder for peft folders).
  const std::string& path() const { return path_; }

 private:
  // Parses map_ (named path_ in errors) with an optional peft adapter config.
  static Result<std::shared_ptr<const LoraFile>> parse(std::shared_ptr<LoraFile> file, const json::Value* config,
                                                       const Options& options);

  std::shared_ptr<MappedFile> map_;
  SafetensorsView view_;
  LoraModel model_;
  std::string path_;
};

// Opens and parses a safetensors file, naming the file in errors.
Result<SafetensorsView> open_safetensors(const std::string& path, std::shared_ptr<MappedFile>* map);

}  // namespace lorarar
