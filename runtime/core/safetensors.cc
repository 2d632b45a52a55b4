#include "core/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "core/json.h"

namespace lorarar {

std::string TensorView::shape_string() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

const TensorView* SafetensorsView::find(std::string_view name) const {
  auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

namespace {

Status bad(const std::string& what) { return make_error(Error::kInvalidFile, what); }

bool read_u64(const json::Value& v, uint64_t* out) {
  if (!v.is_integer() || v.as_int() < 0) return false;
  *out = static_cast<uint64_t>(v.as_int());
  return true;
}

}  // namespace

Result<SafetensorsView> SafetensorsView::parse(const uint8_t* data, size_t size) {
  if (size == 0) return bad("file is empty");
  if (size < 8) {
    return bad("file is truncated: " + std::to_string(size) + " bytes, shorter than the 8-byte header length");
  }
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | data[i];
  if (header_len > size - 8) {
    return bad("header length " + std::to_string(header_len) + " runs past the end of the file (" +
               std::to_string(size) + " bytes)");
  }
  if (header_len > kMaxHeaderBytes) {
    return bad("header length " + std::to_string(header_len) + " exceeds the " + std::to_string(kMaxHeaderBytes) +
               "-byte limit");
  }
  std::string_view header(reinterpret_cast<const char*>(data + 8), static_cast<size_t>(header_len));
  // The reference writer pads the header with trailing spaces; NULs are not JSON.
  auto root_result = json::parse(header);
  if (!root_result.ok()) return bad("header is not JSON (" + root_result.status().message() + ")");
  const json::Value& root = root_result.get();
  if (!root.is_object()) return bad("header is not a JSON object");

  SafetensorsView view;
  view.data_offset_ = 8 + static_cast<size_t>(header_len);
  const size_t data_size = size - view.data_offset_;
  const uint8_t* base = data + view.data_offset_;

  struct Span {
    uint64_t begin, end;
    size_t index;
  };
  std::vector<Span> spans;
  for (const auto& [name, entry] : root.as_object()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) return bad("__metadata__ is not an object");
      for (const auto& [k, v] : entry.as_object()) {
        if (!v.is_string()) return bad("__metadata__ value for " + json::quote(k) + " is not a string");
        view.metadata_[k] = v.as_string();
      }
      continue;
    }
    const std::string ctx = "tensor " + json::quote(name);
    if (!entry.is_object()) return bad(ctx + ": entry is not an object");
    const json::Value* dtype = entry.find("dtype");
    const json::Value* shape = entry.find("shape");
    const json::Value* offsets = entry.find("data_offsets");
    if (!dtype || !dtype->is_string()) return bad(ctx + ": missing or non-string dtype");
    if (!shape || !shape->is_array()) return bad(ctx + ": missing or non-array shape");
    if (!offsets || !offsets->is_array() || offsets->as_array().size() != 2) {
      return bad(ctx + ": data_offsets is not a [begin, end] pair");
    }
    TensorView t;
    t.name = name;
    if (!dtype_from_name(dtype->as_string(), &t.dtype)) {
      return bad(ctx + ": unknown dtype " + json::quote(dtype->as_string()));
    }
    uint64_t numel = 1;
    for (const auto& d : shape->as_array()) {
      uint64_t dim;
      if (!read_u64(d, &dim)) return bad(ctx + ": shape has a negative or non-integer dimension");
      if (dim != 0 && numel > std::numeric_limits<uint64_t>::max() / 8 / dim) {
        return bad(ctx + ": shape overflows");
      }
      numel *= dim;
      t.shape.push_back(static_cast<int64_t>(dim));
    }
    uint64_t begin, end;
    if (!read_u64(offsets->as_array()[0], &begin) || !read_u64(offsets->as_array()[1], &end)) {
      return bad(ctx + ": data_offsets are not non-negative integers");
    }
    if (end < begin) return bad(ctx + ": data_offsets end before they begin");
    if (end > data_size) {
      return bad(ctx + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                 ") out of range (data section is " + std::to_string(data_size) + " bytes)");
    }
    const uint64_t expected = numel * dtype_size(t.dtype);
    if (expected != end - begin) {
      return bad(ctx + ": shape " + t.shape_string() + " of " + dtype_name(t.dtype) + " needs " +
                 std::to_string(expected) + " bytes but data_offsets span " + std::to_string(end - begin));
    }
    t.data = base + begin;
    t.nbytes = static_cast<size_t>(end - begin);
    spans.push_back({begin, end, view.tensors_.size()});
    view.index_.emplace(name, view.tensors_.size());
    view.tensors_.push_back(std::move(t));
  }
  std::sort(spans.begin(), spans.end(),
            [](const Span& a, const Span& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  for (size_t i = 1; i < spans.size(); ++i) {
    const Span& prev = spans[i - 1];
    const Span& cur = spans[i];
    // Empty tensors occupy no bytes and may share an offset with anything.
    if (cur.begin < prev.end && cur.end > cur.begin && prev.end > prev.begin) {
      return bad("tensors " + json::quote(view.tensors_[prev.index].name) + " and " +
                 json::quote(view.tensors_[cur.index].name) + " overlap");
    }
  }
  return view;
}

SafetensorsLayout safetensors_layout(const std::vector<SafetensorsEntry>& entries,
                                     const std::map<std::string, std::string>& metadata) {
  SafetensorsLayout layout;
  json::Value root = json::Value::object();
  if (!metadata.empty()) {
    json::Value meta = json::Value::object();
    for (const auto& [k, v] : metadata) meta.set(k, json::Value::string(v));
    root.set("__metadata__", std::move(meta));
  }
  size_t offset = 0;
  for (const auto& e : entries) {
    size_t numel = 1;
    json::Value shape = json::Value::array();
    for (int64_t d : e.shape) {
      numel *= static_cast<size_t>(d);
      shape.as_array().push_back(json::Value::integer(d));
    }
    const size_t bytes = numel * dtype_size(e.dtype);
    json::Value entry = json::Value::object();
    entry.set("dtype", json::Value::string(dtype_name(e.dtype)));
    entry.set("shape", std::move(shape));
    entry.set("data_offsets", json::Value::array({json::Value::integer(static_cast<int64_t>(offset)),
                                                  json::Value::integer(static_cast<int64_t>(offset + bytes))}));
    root.set(e.name, std::move(entry));
    layout.offsets.push_back(offset);
    layout.sizes.push_back(bytes);
    offset += bytes;
  }
  layout.data_bytes = offset;
  std::string text = root.dump();
  while ((8 + text.size()) % 8 != 0) text.push_back(' ');
  uint64_t n = text.size();
  layout.header.resize(8);
  for (int i = 0; i < 8; ++i) layout.header[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xFF);
  layout.header += text;
  return layout;
}

}  // namespace lorarar
