#include "core/adapter.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/kernels/convert.h"

namespace lorarar {

int64_t AdapterLayer::rank() const {
  int64_t r = 0;
  for (const auto& p : parts) r += p.rank;
  return r;
}

namespace {

// Converts n consecutive elements of a float tensor starting at element `first`.
void convert_row(const TensorView& t, size_t first, size_t n, float scale, float* dst) {
  kernels::convert_to_f32(t.data + first * dtype_size(t.dtype), t.dtype, n, scale, dst);
}

}  // namespace

void AdapterLayer::pack_a(int64_t row0, int64_t rows, int64_t col0, int64_t cols, float* dst, int64_t ld) const {
  int64_t part_start = 0;
  for (const auto& p : parts) {
    const int64_t lo = std::max(row0, part_start);
    const int64_t hi = std::min(row0 + rows, part_start + p.rank);
    for (int64_t r = lo; r < hi; ++r) {
      float* out = dst + (r - row0) * ld;
      convert_row(p.down, static_cast<size_t>((r - part_start) * in_features + col0), static_cast<size_t>(cols),
                  p.scale, out);
      if (!p.column.empty()) {
        const float* m = p.column.data() + col0;
        for (int64_t j = 0; j < cols; ++j) out[j] *= m[j];
      }
    }
    part_start += p.rank;
  }
}

void AdapterLayer::pack_b(float* dst, int64_t ld) const {
  int64_t col = 0;
  for (const auto& p : parts) {
    for (int64_t i = 0; i < out_features; ++i) {
      convert_row(p.up, static_cast<size_t>(i * p.rank), static_cast<size_t>(p.rank), 1.0f, dst + i * ld + col);
    }
    col += p.rank;
  }
}

const AdapterLayer* Adapter::find(const std::string& module) const {
  auto it = std::lower_bound(layers.begin(), layers.end(), module,
                             [](const AdapterLayer& l, const std::string& m) { return l.module < m; });
  return it != layers.end() && it->module == module ? &*it : nullptr;
}

namespace {

AdapterPart part_of(const LoraLayer& l, float weight) {
  AdapterPart p;
  p.down = l.down;
  p.up = l.up;
  p.rank = l.rank;
  p.scale = l.scale * weight;
  return p;
}

AdapterLayer layer_of(const LoraLayer& l) {
  AdapterLayer a;
  a.module = l.module;
  a.in_features = l.in_features;
  a.out_features = l.out_features;
  a.conv1x1 = l.conv1x1;
  return a;
}

Status check_coefficients(const std::string& module, const std::vector<float>& m, int64_t in, const char* which) {
  if (static_cast<int64_t>(m.size()) != in) {
    return make_error(Error::kInvalidArgument, "coefficients for " + json::quote(module) + " (" + which + ") have " +
                                                   std::to_string(m.size()) + " entries, the layer has " +
                                                   std::to_string(in) + " input columns");
  }
  for (float v : m) {
    if (!std::isfinite(v)) {
      return make_error(Error::kInvalidArgument,
                        "coefficients for " + json::quote(module) + " (" + which + ") are not finite");
    }
  }
  return Status::ok();
}

}  // namespace

Adapter single_adapter(const LoraModel& lora, float scale) {
  Adapter out;
  for (const auto& l : lora.layers) {
    AdapterLayer a = layer_of(l);
    a.parts.push_back(part_of(l, scale));
    out.layers.push_back(std::move(a));
  }
  return out;
}

Result<Adapter> merge(const LoraModel& content, const LoraModel& style, const MergeOptions& options) {
  if (options.method == MergeMethod::kColumns && !options.coefficients) {
    return make_error(Error::kInvalidArgument, "the columns merge needs column coefficients");
  }
  if (!std::isfinite(options.content_scale) || !std::isfinite(options.style_scale)) {
    return make_error(Error::kInvalidArgument, "merge scales must be finite");
  }
  std::vector<std::string> modules;
  for (const auto& l : content.layers) modules.push_back(l.module);
  for (const auto& l : style.layers) modules.push_back(l.module);
  std::sort(modules.begin(), modules.end());
  modules.erase(std::unique(modules.begin(), modules.end()), modules.end());

  if (options.method == MergeMethod::kColumns) {
    for (const auto& [module, coeffs] : *options.coefficients) {
      if (!std::binary_search(modules.begin(), modules.end(), module)) {
        return make_error(Error::kNotFound,
                          "coefficients given for " + json::quote(module) + ", which neither LoRA has");
      }
    }
  }

  Adapter out;
  for (const auto& module : modules) {
    const LoraLayer* c = content.find(module);
    const LoraLayer* s = style.find(module);
    if (c && s && (c->in_features != s->in_features || c->out_features != s->out_features)) {
      return make_error(Error::kInvalidArgument,
                        "content and style disagree on the shape of " + json::quote(module) + ": " +
                            std::to_string(c->in_features) + " -> " + std::to_string(c->out_features) + " vs " +
                            std::to_string(s->in_features) + " -> " + std::to_string(s->out_features));
    }
    AdapterLayer a = layer_of(c ? *c : *s);
    const std::pair<std::vector<float>, std::vector<float>>* coeffs = nullptr;
    if (options.method == MergeMethod::kColumns) {
      auto it = options.coefficients->find(module);
      if (it != options.coefficients->end()) coeffs = &it->second;
    }
    if (coeffs) {
      LORARAR_RETURN_IF_ERROR(check_coefficients(module, coeffs->first, a.in_features, "content"));
      LORARAR_RETURN_IF_ERROR(check_coefficients(module, coeffs->second, a.in_features, "style"));
    }
    if (c) {
      a.parts.push_back(part_of(*c, options.content_scale));
      if (coeffs) a.parts.back().column = coeffs->first;
    }
    if (s) {
      a.parts.push_back(part_of(*s, options.style_scale));
      if (coeffs) a.parts.back().column = coeffs->second;
    }
    out.layers.push_back(std::move(a));
  }
  return out;
}

}  // namespace lorarar
