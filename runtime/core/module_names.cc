#include "core/module_names.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

namespace lorarar {

std::string underscored(std::string_view dotted) {
  std::string s(dotted);
  std::replace(s.begin(), s.end(), '.', '_');
  return s;
}

BaseModel::BaseModel(std::vector<TargetLayer> targets, UNetBlockLayout layout)
    : targets_(std::move(targets)), layout_(std::move(layout)) {
  std::sort(targets_.begin(), targets_.end(),
            [](const TargetLayer& a, const TargetLayer& b) { return a.module < b.module; });
  for (size_t i = 0; i < targets_.size(); ++i) {
    by_module_.emplace(targets_[i].module, i);
    by_underscored_.emplace(underscored(targets_[i].module), i);
  }
}

const TargetLayer* BaseModel::find(std::string_view module) const {
  auto it = by_module_.find(std::string(module));
  return it == by_module_.end() ? nullptr : &targets_[it->second];
}

const TargetLayer* BaseModel::find_underscored(std::string_view name) const {
  auto it = by_underscored_.find(std::string(name));
  return it == by_underscored_.end() ? nullptr : &targets_[it->second];
}

Result<BaseModel> BaseModel::from_unet(const json::Value& config, const std::vector<TensorView>& weights) {
  if (!config.is_object()) return make_error(Error::kInvalidFile, "config is not a JSON object");
  const json::Value* blocks = config.find("down_block_types");
  if (!blocks || !blocks->is_array() || blocks->as_array().empty()) {
    return make_error(Error::kUnsupported, "config has no down_block_types: not a UNet2DConditionModel config");
  }
  const size_t n_blocks = blocks->as_array().size();
  UNetBlockLayout layout;
  const json::Value* lpb = config.find("layers_per_block");
  if (lpb && lpb->is_integer() && lpb->as_int() > 0 && lpb->as_int() < 1000) {
    layout.layers_per_block.assign(n_blocks, static_cast<int>(lpb->as_int()));
  } else if (lpb && lpb->is_array() && lpb->as_array().size() == n_blocks) {
    for (const auto& v : lpb->as_array()) {
      if (!v.is_integer() || v.as_int() <= 0 || v.as_int() >= 1000) {
        return make_error(Error::kInvalidFile, "layers_per_block holds a non-positive or non-integer entry");
      }
      layout.layers_per_block.push_back(static_cast<int>(v.as_int()));
    }
  } else {
    return make_error(Error::kInvalidFile, "config has no usable layers_per_block");
  }

  std::vector<TargetLayer> targets;
  const std::string suffix = ".weight";
  for (const auto& t : weights) {
    if (t.name.size() <= suffix.size() || t.name.compare(t.name.size() - suffix.size(), suffix.size(), suffix) != 0) {
      continue;
    }
    TargetLayer layer;
    layer.module = t.name.substr(0, t.name.size() - suffix.size());
    if (t.shape.size() == 2) {
      layer.out_features = t.shape[0];
      layer.in_features = t.shape[1];
    } else if (t.shape.size() == 4 && t.shape[2] == 1 && t.shape[3] == 1) {
      layer.out_features = t.shape[0];
      layer.in_features = t.shape[1];
      layer.conv1x1 = true;
    } else {
      continue;  // norms (1-D), k x k convolutions
    }
    if (!dtype_is_float(t.dtype)) continue;
    targets.push_back(std::move(layer));
  }
  if (targets.empty()) return make_error(Error::kInvalidFile, "weights hold no linear layers");
  return BaseModel(std::move(targets), std::move(layout));
}

namespace {

bool parse_index(std::string_view s, size_t* pos, int* out) {
  size_t start = *pos;
  int v = 0;
  while (*pos < s.size() && std::isdigit(static_cast<unsigned char>(s[*pos]))) {
    if (v > 100000) return false;
    v = v * 10 + (s[*pos] - '0');
    ++*pos;
  }
  if (*pos == start) return false;
  *out = v;
  return true;
}

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

// Reads "<i>_<j>_" at pos; returns false when the shape differs.
bool parse_pair(std::string_view s, size_t* pos, int* i, int* j) {
  if (!parse_index(s, pos, i) || *pos >= s.size() || s[*pos] != '_') return false;
  ++*pos;
  if (!parse_index(s, pos, j) || *pos >= s.size() || s[*pos] != '_') return false;
  ++*pos;
  return true;
}

// LDM resnet member names -> diffusers.
std::string resnet_rest(std::string_view rest) {
  static const std::pair<const char*, const char*> kMap[] = {
      {"in_layers_2", "conv1"},
      {"out_layers_3", "conv2"},
      {"emb_layers_1", "time_emb_proj"},
      {"skip_connection", "conv_shortcut"},
  };
  for (const auto& [ldm, diffusers] : kMap) {
    if (rest == ldm) return diffusers;
  }
  return std::string(rest);
}

bool is_attention_member(std::string_view rest) {
  return starts_with(rest, "transformer_blocks") || starts_with(rest, "proj_in") || starts_with(rest, "proj_out") ||
         starts_with(rest, "norm");
}

}  // namespace

Result<std::string> ldm_to_diffusers_prefix(std::string_view name, const UNetBlockLayout& layout) {
  const auto& lpb = layout.layers_per_block;
  auto out_of_layout = [&]() {
    return make_error(Error::kNotFound,
                      "LDM block name " + json::quote(name) + " does not fit the base model's block layout");
  };
  static const std::pair<const char*, const char*> kWhole[] = {
      {"time_embed_0", "time_embedding.linear_1"},
      {"time_embed_2", "time_embedding.linear_2"},
      {"label_emb_0_0", "add_embedding.linear_1"},
      {"label_emb_0_2", "add_embedding.linear_2"},
      {"input_blocks_0_0", "conv_in"},
      {"out_2", "conv_out"},
  };
  for (const auto& [ldm, diffusers] : kWhole) {
    if (name == ldm) return std::string(diffusers);
  }
  if (starts_with(name, "input_blocks_")) {
    size_t pos = 13;
    int i, j;
    if (!parse_pair(name, &pos, &i, &j) || i < 1) return out_of_layout();
    std::string_view rest = name.substr(pos);
    int index = 1;
    for (size_t b = 0; b < lpb.size(); ++b) {
      const int span = lpb[b] + 1;  // resnets + downsampler
      if (i < index + span) {
        const int layer = i - index;
        if (layer == lpb[b]) {
          return "down_blocks." + std::to_string(b) + ".downsamplers.0." + std::string(rest == "op" ? "conv" : rest);
        }
        if (j == 0)
          return "down_blocks." + std::to_string(b) + ".resnets." + std::to_string(layer) + "." + resnet_rest(rest);
        if (j == 1)
          return "down_blocks." + std::to_string(b) + ".attentions." + std::to_string(layer) + "." + std::string(rest);
        return out_of_layout();
      }
      index += span;
    }
    return out_of_layout();
  }
  if (starts_with(name, "middle_block_")) {
    size_t pos = 13;
    int j;
    if (!parse_index(name, &pos, &j) || pos >= name.size() || name[pos] != '_') return out_of_layout();
    std::string_view rest = name.substr(pos + 1);
    if (j == 0) return "mid_block.resnets.0." + resnet_rest(rest);
    if (j == 1) return "mid_block.attentions.0." + std::string(rest);
    if (j == 2) return "mid_block.resnets.1." + resnet_rest(rest);
    return out_of_layout();
  }
  if (starts_with(name, "output_blocks_")) {
    size_t pos = 14;
    int i, j;
    if (!parse_pair(name, &pos, &i, &j)) return out_of_layout();
    std::string_view rest = name.substr(pos);
    int index = 0;
    for (size_t u = 0; u < lpb.size(); ++u) {
      const int span = lpb[lpb.size() - 1 - u] + 1;
      if (i < index + span) {
        const std::string block = "up_blocks." + std::to_string(u) + ".";
        const int layer = i - index;
        if (j == 0) return block + "resnets." + std::to_string(layer) + "." + resnet_rest(rest);
        if (j == 1 && is_attention_member(rest)) {
          return block + "attentions." + std::to_string(layer) + "." + std::string(rest);
        }
        if (j == 1 || j == 2) return block + "upsamplers.0." + std::string(rest);
        return out_of_layout();
      }
      index += span;
    }
    return out_of_layout();
  }
  return std::string(name);
}

Result<std::string> dotted_from_vocabulary(std::string_view name) {
  // diffusers UNet module-name segments that contain underscores, longest first.
  static const char* const kWords[] = {
      "transformer_blocks",
      "conv_norm_out",
      "conv_shortcut",
      "time_embedding",
      "add_embedding",
      "encoder_hid_proj",
      "time_emb_proj",
      "downsamplers",
      "down_blocks",
      "upsamplers",
      "add_k_proj",
      "add_v_proj",
      "add_q_proj",
      "to_add_out",
      "attentions",
      "up_blocks",
      "mid_block",
      "proj_out",
      "linear_1",
      "linear_2",
      "conv_out",
      "proj_in",
      "conv_in",
      "resnets",
      "to_out",
      "attn1",
      "attn2",
      "norm1",
      "norm2",
      "norm3",
      "conv1",
      "conv2",
      "to_q",
      "to_k",
      "to_v",
      "proj",
      "conv",
      "norm",
      "attn",
      "net",
      "ff",
  };
  auto unmapped = [&]() {
    return make_error(Error::kNotFound, "cannot map " + json::quote(name) +
                                            " to a diffusers module without the base model (pass --base)");
  };
  std::string out;
  size_t pos = 0;
  while (pos < name.size()) {
    if (!out.empty()) out.push_back('.');
    if (std::isdigit(static_cast<unsigned char>(name[pos]))) {
      while (pos < name.size() && std::isdigit(static_cast<unsigned char>(name[pos]))) out.push_back(name[pos++]);
    } else {
      bool matched = false;
      for (const char* word : kWords) {
        std::string_view w(word);
        if (name.substr(pos, w.size()) == w && (pos + w.size() == name.size() || name[pos + w.size()] == '_')) {
          out += w;
          pos += w.size();
          matched = true;
          break;
        }
      }
      if (!matched) return unmapped();
    }
    if (pos < name.size()) {
      if (name[pos] != '_' || pos + 1 == name.size()) return unmapped();
      ++pos;
    }
  }
  return out;
}

}  // namespace lorarar
