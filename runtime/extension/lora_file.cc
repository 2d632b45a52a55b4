#include "extension/lora_file.h"

namespace lorarar {

namespace {

// `map`'s bytes as safetensors; errors are prefixed with `path`.
Result<SafetensorsView> parse_safetensors(const std::string& path, const std::shared_ptr<MappedFile>& map) {
  const uint8_t* d = map->data();
  const size_t n = map->size();
  auto view = SafetensorsView::parse(d, n);
  if (!view.ok()) {
    // Pickled checkpoints (.bin/.pt/.ckpt) are zip archives or raw pickles;
    // they are never unpickled (arbitrary code), only named. Checked only
    // once the bytes are not safetensors: a header length can start with the
    // same bytes (0x80 0x02 is 640, "PK" is 19280 + k * 65536).
    if (n >= 2 && ((d[0] == 'P' && d[1] == 'K') || d[0] == 0x80)) {
      return make_error(Error::kUnsupported,
                        path + ": a PyTorch pickle, not safetensors; convert it to .safetensors first");
    }
    return view.status().with_context(path);
  }
  return view;
}

Result<json::Value> parse_adapter_config(const std::string& name, const std::string& text) {
  auto parsed = json::parse(text);
  if (!parsed.ok()) return parsed.status().with_context(name);
  if (!parsed->is_object()) return make_error(Error::kInvalidFile, name + ": not a JSON object");
  return parsed;
}

}  // namespace

Result<SafetensorsView> open_safetensors(const std::string& path, std::shared_ptr<MappedFile>* map) {
  auto mapped = MappedFile::open(path);
  if (!mapped.ok()) return mapped.status().with_context(path);
  *map = std::move(mapped).get();
  return parse_safetensors(path, *map);
}

Result<std::shared_ptr<const LoraFile>> LoraFile::load(const std::string& path, const Options& options) {
  std::string file_path = path;
  json::Value adapter_config;
  bool has_config = false;
  if (is_directory(path)) {
    const std::string peft = join_path(path, "adapter_model.safetensors");
    const std::string diffusers = join_path(path, "pytorch_lora_weights.safetensors");
    if (file_exists(peft)) {
      file_path = peft;
      const std::string config_path = join_path(path, "adapter_config.json");
      if (file_exists(config_path)) {
        auto text = read_text_file(config_path);
        if (!text.ok()) return text.status().with_context(config_path);
        LORARAR_ASSIGN_OR_RETURN(adapter_config, parse_adapter_config(config_path, text.get()));
        has_config = true;
      }
    } else if (file_exists(diffusers)) {
      file_path = diffusers;
    } else {
      return make_error(Error::kNotFound,
                        path + ": folder holds neither adapter_model.safetensors nor pytorch_lora_weights.safetensors");
    }
  }
  std::shared_ptr<LoraFile> file(new LoraFile());
  file->path_ = file_path;
  auto mapped = MappedFile::open(file_path);
  if (!mapped.ok()) return mapped.status().with_context(file_path);
  file->map_ = std::move(mapped).get();
  return parse(std::move(file), has_config ? &adapter_config : nullptr, options);
}

Result<std::shared_ptr<const LoraFile>> LoraFile::from_memory(const void* data, size_t size, const std::string& name,
                                                              const std::string& adapter_config_json,
                                                              const Options& options) {
  json::Value adapter_config;
  if (!adapter_config_json.empty()) {
    LORARAR_ASSIGN_OR_RETURN(adapter_config, parse_adapter_config(name + " (adapter config)", adapter_config_json));
  }
  std::shared_ptr<LoraFile> file(new LoraFile());
  file->path_ = name;
  auto copy = MappedFile::copy_of(data, size);
  if (!copy.ok()) return copy.status().with_context(name);
  file->map_ = std::move(copy).get();
  return parse(std::move(file), adapter_config_json.empty() ? nullptr : &adapter_config, options);
}

Result<std::shared_ptr<const LoraFile>> LoraFile::parse(std::shared_ptr<LoraFile> file, const json::Value* config,
                                                        const Options& options) {
  LORARAR_ASSIGN_OR_RETURN(file->view_, parse_safetensors(file->path_, file->map_));
  LoraParseOptions parse_options;
  parse_options.base = options.base;
  parse_options.adapter_config = config;
  parse_options.check_values = options.check_values;
  auto model = parse_lora(file->view_, parse_options);
  if (!model.ok()) return model.status().with_context(file->path_);
  file->model_ = std::move(model).get();
  file->model_.source = file->path_;
  return std::shared_ptr<const LoraFile>(std::move(file));
}

}  // namespace lorarar
