#include "core/lora.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>

#include "core/kernels/convert.h"

namespace lorarar {

const char* lora_format_name(LoraFormat f) {
  switch (f) {
    case LoraFormat::kPeft: return "peft";
    case LoraFormat::kDiffusersLegacy: return "diffusers-legacy";
    case LoraFormat::kKohya: return "kohya";
  }
  return "?";
}

const LoraLayer* LoraModel::find(const std::string& module) const {
  auto it = std::lower_bound(layers.begin(), layers.end(), module,
                             [](const LoraLayer& l, const std::string& m) { return l.module < m; });
  return it != layers.end() && it->module == module ? &*it : nullptr;
}

namespace {

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }
bool ends_with(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && s.substr(s.size() - p.size()) == p;
}
bool contains(std::string_view s, std::string_view p) { return s.find(p) != std::string_view::npos; }

Status unsupported(const std::string& what) { return make_error(Error::kUnsupported, what); }
Status invalid(const std::string& what) { return make_error(Error::kInvalidFile, what); }

// alpha settings from peft (adapter_config.json or diffusers' metadata copy of it).
struct AlphaConfig {
  std::optional<double> lora_alpha;
  std::vector<std::pair<std::string, double>> alpha_pattern;
  bool rslora = false;
  bool dora = false;
};

// Reads `key` from a peft config object, where diffusers' metadata prefixes
// every key with "unet." and peft folders do not.
const json::Value* config_field(const json::Value& cfg, const std::string& prefix, const char* key) {
  return cfg.find(prefix + key);
}

Result<AlphaConfig> read_alpha_config(const json::Value& cfg, const std::string& prefix, const char* source) {
  AlphaConfig out;
  const std::string ctx = std::string(source) + ": ";
  if (const auto* a = config_field(cfg, prefix, "lora_alpha"); a && !a->is_null()) {
    if (!a->is_number() || !std::isfinite(a->as_double())) return invalid(ctx + "lora_alpha is not a number");
    out.lora_alpha = a->as_double();
  }
  if (const auto* p = config_field(cfg, prefix, "alpha_pattern"); p && !p->is_null()) {
    if (!p->is_object()) return invalid(ctx + "alpha_pattern is not an object");
    for (const auto& [k, v] : p->as_object()) {
      if (!v.is_number() || !std::isfinite(v.as_double())) {
        return invalid(ctx + "alpha_pattern[" + json::quote(k) + "] is not a number");
      }
      out.alpha_pattern.emplace_back(k, v.as_double());
    }
  }
  if (const auto* r = config_field(cfg, prefix, "use_rslora"); r && r->is_bool()) out.rslora = r->as_bool();
  if (const auto* d = config_field(cfg, prefix, "use_dora"); d && d->is_bool()) out.dora = d->as_bool();
  return out;
}

// The kinds of tensors that belong to LoRA variants the engine does not apply.
std::optional<std::string> unsupported_kind(std::string_view key) {
  if (contains(key, "hada_w") || contains(key, "hada_t")) return "a LoHa (hada_*) tensor";
  if (contains(key, "lokr_w") || contains(key, "lokr_t")) return "a LoKr (lokr_*) tensor";
  if (contains(key, "dora_scale") || contains(key, "lora_magnitude_vector")) return "a DoRA magnitude tensor";
  if (contains(key, "lora_mid")) return "a LoCon mid (Tucker) factor";
  if (ends_with(key, ".diff") || ends_with(key, ".diff_b")) return "a full weight difference";
  if (ends_with(key, ".lora_A.bias") || ends_with(key, ".lora_B.bias") || ends_with(key, ".lora_up.bias") ||
      ends_with(key, ".lora.up.bias") || ends_with(key, ".lora_down.bias") || ends_with(key, ".lora.down.bias")) {
    return "a LoRA bias";
  }
  return std::nullopt;
}

bool is_text_encoder_key(std::string_view key) {
  static const char* const kPrefixes[] = {"text_encoder.",
                                          "text_encoder_2.",
                                          "lora_te_",
                                          "lora_te1_",
                                          "lora_te2_",
                                          "te.",
                                          "te1.",
                                          "te2.",
                                          "base_model.model.text_model."};
  for (const char* p : kPrefixes) {
    if (starts_with(key, p)) return true;
  }
  return false;
}

enum class Role { kDown, kUp, kAlpha };

struct KeyInfo {
  std::string module_name;  // as written (dotted or kohya underscore body)
  std::string key_prefix;
  Role role;
  LoraFormat format;
  bool kohya_name;  // module_name is underscored and needs mapping
};

std::optional<KeyInfo> classify(std::string_view key) {
  if (starts_with(key, "lora_unet_")) {
    const size_t dot = key.find('.');
    if (dot == std::string_view::npos) return std::nullopt;
    std::string_view body = key.substr(10, dot - 10);
    std::string_view suffix = key.substr(dot + 1);
    KeyInfo info{std::string(body), std::string(key.substr(0, dot)), Role::kDown, LoraFormat::kKohya, true};
    if (suffix == "lora_down.weight") {
      info.role = Role::kDown;
    } else if (suffix == "lora_up.weight") {
      info.role = Role::kUp;
    } else if (suffix == "alpha") {
      info.role = Role::kAlpha;
    } else {
      return std::nullopt;
    }
    return info;
  }
  std::string_view name = key;
  if (starts_with(name, "base_model.model.")) name.remove_prefix(17);
  if (starts_with(name, "unet.unet.")) {
    name.remove_prefix(10);
  } else if (starts_with(name, "unet.")) {
    name.remove_prefix(5);
  }
  struct Suffix {
    const char* text;
    Role role;
    LoraFormat format;
  };
  static const Suffix kSuffixes[] = {
      {".lora_A.weight", Role::kDown, LoraFormat::kPeft},
      {".lora_B.weight", Role::kUp, LoraFormat::kPeft},
      {".lora.down.weight", Role::kDown, LoraFormat::kDiffusersLegacy},
      {".lora.up.weight", Role::kUp, LoraFormat::kDiffusersLegacy},
      {".lora_linear_layer.down.weight", Role::kDown, LoraFormat::kDiffusersLegacy},
      {".lora_linear_layer.up.weight", Role::kUp, LoraFormat::kDiffusersLegacy},
      {".down.weight", Role::kDown, LoraFormat::kDiffusersLegacy},  // attn-processor: ...to_q_lora.down.weight
      {".up.weight", Role::kUp, LoraFormat::kDiffusersLegacy},
      {".lora_down.weight", Role::kDown, LoraFormat::kKohya},
      {".lora_up.weight", Role::kUp, LoraFormat::kKohya},
      {".alpha", Role::kAlpha, LoraFormat::kDiffusersLegacy},
  };
  for (const auto& s : kSuffixes) {
    if (!ends_with(name, s.text)) continue;
    std::string module(name.substr(0, name.size() - std::strlen(s.text)));
    const std::string prefix(key.substr(0, key.size() - std::strlen(s.text)));
    const bool processor_form = contains(module, ".processor.");
    if ((std::string_view(s.text) == ".down.weight" || std::string_view(s.text) == ".up.weight") && !processor_form) {
      continue;  // bare down/up only in the attention-processor layout
    }
    if (processor_form) {
      // attn1.processor.to_q_lora -> attn1.to_q ; to_out_lora -> to_out.0
      const size_t p = module.find(".processor.");
      std::string leaf = module.substr(p + 11);
      if (!ends_with(leaf, "_lora")) return std::nullopt;
      leaf.resize(leaf.size() - 5);
      if (leaf == "to_out") leaf = "to_out.0";
      module = module.substr(0, p) + "." + leaf;
    }
    // peft's in-memory naming carries the adapter name: .lora_A.default.weight
    return KeyInfo{module, prefix, s.role, s.format, false};
  }
  for (const char* mid : {".lora_A.", ".lora_B."}) {
    const size_t p = name.find(mid);
    if (p != std::string_view::npos && ends_with(name, ".weight")) {
      const size_t kp = key.find(mid);
      return KeyInfo{std::string(name.substr(0, p)), std::string(key.substr(0, kp)),
                     mid[6] == 'A' ? Role::kDown : Role::kUp, LoraFormat::kPeft, false};
    }
  }
  return std::nullopt;
}

Status check_finite(const TensorView& t) {
  const size_t n = t.numel();
  const size_t bad_at = kernels::first_non_finite(t.data, t.dtype, n);
  if (bad_at == n) return Status::ok();
  const float v = t.at(bad_at);
  return invalid("tensor " + json::quote(t.name) + " holds " + (std::isnan(v) ? "NaN" : "Inf") + " at element " +
                 std::to_string(bad_at));
}

struct Pending {
  std::string key_prefix;
  LoraFormat format = LoraFormat::kPeft;
  std::optional<TensorView> down, up, alpha;
};

Result<std::string> map_module(const KeyInfo& info, const LoraParseOptions& options) {
  if (!info.kohya_name) {
    if (options.base && !options.base->find(info.module_name)) {
      return make_error(Error::kNotFound,
                        "targets " + json::quote(info.module_name) + ", which the base model does not have");
    }
    return info.module_name;
  }
  const UNetBlockLayout layout = options.base ? options.base->layout() : UNetBlockLayout::sd_default();
  LORARAR_ASSIGN_OR_RETURN(std::string rewritten, ldm_to_diffusers_prefix(info.module_name, layout));
  if (options.base) {
    const TargetLayer* target = options.base->find_underscored(underscored(rewritten));
    if (!target) {
      return make_error(Error::kNotFound,
                        "targets " + json::quote(info.key_prefix) + ", which the base model does not have");
    }
    return target->module;
  }
  return dotted_from_vocabulary(underscored(rewritten));
}

Status check_factor_dtype(const TensorView& t) {
  if (t.dtype == DType::kF32 || t.dtype == DType::kF16 || t.dtype == DType::kBF16) return Status::ok();
  return unsupported("tensor " + json::quote(t.name) + " has dtype " + dtype_name(t.dtype) +
                     "; LoRA factors must be F32, F16 or BF16");
}

}  // namespace

Result<LoraModel> parse_lora(const SafetensorsView& file, const LoraParseOptions& options) {
  LoraModel model;
  model.metadata = file.metadata();

  AlphaConfig alpha_cfg;
  if (auto it = file.metadata().find("lora_adapter_metadata"); it != file.metadata().end()) {
    auto meta = json::parse(it->second);
    if (!meta.ok()) return invalid("metadata lora_adapter_metadata is not JSON (" + meta.status().message() + ")");
    const json::Value* unet = meta->find("unet");
    LORARAR_ASSIGN_OR_RETURN(alpha_cfg, unet && unet->is_object()
                                            ? read_alpha_config(*unet, "", "lora_adapter_metadata")
                                            : read_alpha_config(*meta, "unet.", "lora_adapter_metadata"));
  }
  if (options.adapter_config) {
    LORARAR_ASSIGN_OR_RETURN(alpha_cfg, read_alpha_config(*options.adapter_config, "", "adapter_config.json"));
  }
  if (alpha_cfg.dora) return unsupported("the adapter is DoRA (use_dora), which the engine does not apply");

  std::map<std::string, Pending> pending;
  int format_votes[3] = {0, 0, 0};
  for (const auto& t : file.tensors()) {
    if (is_text_encoder_key(t.name)) {
      model.text_encoder_keys.push_back(t.name);
      continue;
    }
    if (auto kind = unsupported_kind(t.name)) {
      return unsupported("tensor " + json::quote(t.name) + " is " + *kind + ", which the engine does not apply");
    }
    auto info = classify(t.name);
    if (!info) return unsupported("tensor " + json::quote(t.name) + " is not a LoRA factor of a supported format");
    LORARAR_ASSIGN_OR_RETURN(std::string module, map_module(*info, options));
    Pending& p = pending[module];
    if (p.key_prefix.empty()) p.key_prefix = info->key_prefix;
    p.format = info->format;
    format_votes[static_cast<int>(info->format)]++;
    std::optional<TensorView>* slot = info->role == Role::kDown ? &p.down : info->role == Role::kUp ? &p.up : &p.alpha;
    if (slot->has_value()) {
      return invalid("tensors " + json::quote((*slot)->name) + " and " + json::quote(t.name) +
                     " both give the same factor of " + json::quote(module));
    }
    *slot = t;
  }

  if (pending.empty()) {
    if (!model.text_encoder_keys.empty()) {
      return unsupported("holds only text-encoder LoRA layers (" + std::to_string(model.text_encoder_keys.size()) +
                         " tensors), which the engine does not apply");
    }
    return invalid("holds no LoRA layers");
  }
  model.format = static_cast<LoraFormat>(std::max_element(format_votes, format_votes + 3) - format_votes);

  for (auto& [module, p] : pending) {
    const std::string ctx = "layer " + json::quote(p.key_prefix);
    if (!p.down) return invalid(ctx + " has an up factor but no down factor");
    if (!p.up) return invalid(ctx + " has a down factor but no up factor");
    LORARAR_RETURN_IF_ERROR(check_factor_dtype(*p.down));
    LORARAR_RETURN_IF_ERROR(check_factor_dtype(*p.up));
    LoraLayer layer;
    layer.module = module;
    layer.key_prefix = p.key_prefix;
    const auto& ds = p.down->shape;
    const auto& us = p.up->shape;
    if (ds.size() == 4) {
      if (ds[2] != 1 || ds[3] != 1) {
        return unsupported(ctx + " is a convolutional LoRA (LoCon) with a " + std::to_string(ds[2]) + "x" +
                           std::to_string(ds[3]) + " kernel, which the engine does not apply");
      }
      if (us.size() != 4 || us[2] != 1 || us[3] != 1) {
        return invalid(ctx + ": down factor is " + p.down->shape_string() + " but up factor is " +
                       p.up->shape_string());
      }
      layer.conv1x1 = true;
    } else if (ds.size() != 2 || us.size() != 2) {
      return invalid(ctx + ": factors must be 2-D, got down " + p.down->shape_string() + " and up " +
                     p.up->shape_string());
    }
    layer.rank = ds[0];
    layer.in_features = ds[1];
    layer.out_features = us[0];
    if (us[1] != layer.rank) {
      return invalid(ctx + ": A/B rank mismatch: down " + p.down->shape_string() + " has rank " +
                     std::to_string(layer.rank) + ", up " + p.up->shape_string() + " has rank " +
                     std::to_string(us[1]));
    }
    if (layer.rank <= 0 || layer.in_features <= 0 || layer.out_features <= 0) {
      return invalid(ctx + ": factors have an empty dimension");
    }
    if (options.base) {
      const TargetLayer* target = options.base->find(module);
      if (target->in_features != layer.in_features || target->out_features != layer.out_features) {
        return invalid(ctx + ": in/out features " + std::to_string(layer.in_features) + " -> " +
                       std::to_string(layer.out_features) + " do not fit the base layer " + json::quote(module) + " (" +
                       std::to_string(target->in_features) + " -> " + std::to_string(target->out_features) + ")");
      }
    }
    layer.down = *p.down;
    layer.up = *p.up;
    layer.alpha = static_cast<float>(layer.rank);
    if (p.alpha) {
      if (!dtype_is_float(p.alpha->dtype) || p.alpha->numel() != 1) {
        return invalid("tensor " + json::quote(p.alpha->name) + ": alpha must be one float");
      }
      layer.alpha = p.alpha->at(0);
      layer.alpha_in_file = true;
    } else {
      for (const auto& [pattern, value] : alpha_cfg.alpha_pattern) {
        if (module == pattern || ends_with(module, "." + pattern)) {
          layer.alpha = static_cast<float>(value);
          layer.alpha_in_file = true;
          break;
        }
      }
      if (!layer.alpha_in_file && alpha_cfg.lora_alpha) {
        layer.alpha = static_cast<float>(*alpha_cfg.lora_alpha);
        layer.alpha_in_file = true;
      }
    }
    if (!std::isfinite(layer.alpha)) return invalid(ctx + ": alpha is not finite");
    layer.scale = alpha_cfg.rslora ? layer.alpha / std::sqrt(static_cast<float>(layer.rank))
                                   : layer.alpha / static_cast<float>(layer.rank);
    if (options.check_values) {
      LORARAR_RETURN_IF_ERROR(check_finite(layer.down));
      LORARAR_RETURN_IF_ERROR(check_finite(layer.up));
    }
    model.layers.push_back(std::move(layer));
  }
  return model;  // std::map iteration keeps layers sorted by module
}

}  // namespace lorarar
