#include "extension/adapter_io.h"

#include <cmath>
#include <cstring>
#include <map>
#include <vector>

#include "extension/lora_file.h"

namespace lorarar {

namespace {

Status write_tensors(const std::string& path, const std::vector<SafetensorsEntry>& entries,
                     const std::vector<std::vector<float>>& values,
                     const std::map<std::string, std::string>& metadata) {
  const SafetensorsLayout layout = safetensors_layout(entries, metadata);
  auto writer = AtomicFileWriter::create(path, layout.header.size() + layout.data_bytes);
  if (!writer.ok()) return writer.status().with_context(path);
  uint8_t* out = writer.get()->data();
  std::memcpy(out, layout.header.data(), layout.header.size());
  uint8_t* data = out + layout.header.size();
  for (size_t i = 0; i < entries.size(); ++i) {
    uint8_t* dst = data + layout.offsets[i];
    for (size_t j = 0; j < values[i].size(); ++j) store_float(dst, entries[i].dtype, j, values[i][j]);
  }
  return writer.get()->commit().with_context(path);
}

}  // namespace

Status save_adapter(const Adapter& adapter, const std::string& path, const AdapterSaveOptions& options) {
  if (options.dtype != DType::kF32 && options.dtype != DType::kF16 && options.dtype != DType::kBF16) {
    return make_error(Error::kInvalidArgument, "adapters are written as F32, F16 or BF16");
  }
  if (adapter.layers.empty()) return make_error(Error::kInvalidArgument, "the adapter has no layers");
  std::vector<SafetensorsEntry> entries;
  std::vector<std::vector<float>> values;
  std::map<int64_t, int> rank_count;
  for (const auto& layer : adapter.layers) {
    const int64_t r = layer.rank();
    rank_count[r]++;
    std::vector<int64_t> a_shape = {r, layer.in_features};
    std::vector<int64_t> b_shape = {layer.out_features, r};
    if (layer.conv1x1) {
      a_shape.insert(a_shape.end(), {1, 1});
      b_shape.insert(b_shape.end(), {1, 1});
    }
    std::vector<float> a(static_cast<size_t>(r * layer.in_features));
    layer.pack_a(0, r, 0, layer.in_features, a.data(), layer.in_features);
    std::vector<float> b(static_cast<size_t>(layer.out_features * r));
    layer.pack_b(b.data());
    entries.push_back({"unet." + layer.module + ".lora_A.weight", options.dtype, a_shape});
    values.push_back(std::move(a));
    entries.push_back({"unet." + layer.module + ".lora_B.weight", options.dtype, b_shape});
    values.push_back(std::move(b));
  }
  // peft reads one r / lora_alpha plus per-module exceptions; with the scales
  // folded into A', every layer needs alpha == its rank (scale 1).
  int64_t common_rank = 0;
  int best = -1;
  for (const auto& [r, n] : rank_count) {
    if (n > best) {
      best = n;
      common_rank = r;
    }
  }
  json::Value rank_pattern = json::Value::object();
  json::Value alpha_pattern = json::Value::object();
  json::Value targets = json::Value::array();
  for (const auto& layer : adapter.layers) {
    targets.as_array().push_back(json::Value::string(layer.module));
    if (layer.rank() != common_rank) {
      rank_pattern.set(layer.module, json::Value::integer(layer.rank()));
      alpha_pattern.set(layer.module, json::Value::integer(layer.rank()));
    }
  }
  json::Value meta = json::Value::object();
  meta.set("unet.r", json::Value::integer(common_rank));
  meta.set("unet.lora_alpha", json::Value::integer(common_rank));
  meta.set("unet.rank_pattern", std::move(rank_pattern));
  meta.set("unet.alpha_pattern", std::move(alpha_pattern));
  meta.set("unet.target_modules", std::move(targets));
  meta.set("unet.use_dora", json::Value::boolean(false));
  meta.set("unet.use_rslora", json::Value::boolean(false));
  meta.set("unet.lora_dropout", json::Value::number(0.0));
  meta.set("unet.init_lora_weights", json::Value::boolean(true));
  meta.set("unet.bias", json::Value::string("none"));
  meta.set("unet.peft_type", json::Value::string("LORA"));
  const std::map<std::string, std::string> metadata = {{"format", "pt"}, {"lora_adapter_metadata", meta.dump()}};
  return write_tensors(path, entries, values, metadata);
}

Result<ColumnCoefficients> load_coefficients(const std::string& path) {
  std::shared_ptr<MappedFile> map;
  LORARAR_ASSIGN_OR_RETURN(SafetensorsView view, open_safetensors(path, &map));
  return parse_coefficients(view, path);
}

Result<ColumnCoefficients> parse_coefficients(const SafetensorsView& view, const std::string& path) {
  ColumnCoefficients out;
  std::map<std::string, std::pair<bool, bool>> seen;
  for (const auto& t : view.tensors()) {
    const bool content = t.name.size() > 8 && t.name.compare(t.name.size() - 8, 8, ".content") == 0;
    const bool style = t.name.size() > 6 && t.name.compare(t.name.size() - 6, 6, ".style") == 0;
    if (!content && !style) {
      return make_error(Error::kInvalidFile,
                        path + ": tensor " + json::quote(t.name) + " is neither <module>.content nor <module>.style");
    }
    if (!dtype_is_float(t.dtype) || t.shape.size() != 1) {
      return make_error(Error::kInvalidFile, path + ": tensor " + json::quote(t.name) + " must be a 1-D float vector");
    }
    const std::string module = t.name.substr(0, t.name.size() - (content ? 8 : 6));
    std::vector<float> v(t.numel());
    for (size_t i = 0; i < v.size(); ++i) {
      v[i] = t.at(i);
      if (!std::isfinite(v[i])) {
        return make_error(Error::kInvalidFile, path + ": tensor " + json::quote(t.name) + " holds NaN or Inf");
      }
    }
    (content ? out[module].first : out[module].second) = std::move(v);
    (content ? seen[module].first : seen[module].second) = true;
  }
  for (const auto& [module, both] : seen) {
    if (!both.first || !both.second) {
      return make_error(Error::kInvalidFile, path + ": " + json::quote(module) + " has " +
                                                 (both.first ? "content" : "style") + " coefficients but no " +
                                                 (both.first ? "style" : "content") + " ones");
    }
  }
  if (out.empty()) return make_error(Error::kInvalidFile, path + ": holds no coefficients");
  return out;
}

Status save_coefficients(const ColumnCoefficients& coefficients, const std::string& path) {
  std::vector<SafetensorsEntry> entries;
  std::vector<std::vector<float>> values;
  for (const auto& [module, pair] : coefficients) {
    entries.push_back({module + ".content", DType::kF32, {static_cast<int64_t>(pair.first.size())}});
    values.push_back(pair.first);
    entries.push_back({module + ".style", DType::kF32, {static_cast<int64_t>(pair.second.size())}});
    values.push_back(pair.second);
  }
  return write_tensors(path, entries, values, {});
}

}  // namespace lorarar
