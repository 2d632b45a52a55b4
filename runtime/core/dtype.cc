#include "core/dtype.h"

namespace lorarar {

namespace {
struct DTypeInfo {
  DType type;
  const char* name;
  size_t size;
};
constexpr DTypeInfo kDTypes[] = {
    {DType::kF64, "F64", 8}, {DType::kF32, "F32", 4},   {DType::kF16, "F16", 2},        {DType::kBF16, "BF16", 2},
    {DType::kI64, "I64", 8}, {DType::kI32, "I32", 4},   {DType::kI16, "I16", 2},        {DType::kI8, "I8", 1},
    {DType::kU8, "U8", 1},   {DType::kBool, "BOOL", 1}, {DType::kF8E4M3, "F8_E4M3", 1}, {DType::kF8E5M2, "F8_E5M2", 1},
};
}  // namespace

const char* dtype_name(DType t) {
  for (const auto& info : kDTypes) {
    if (info.type == t) return info.name;
  }
  return "?";
}

bool dtype_from_name(std::string_view name, DType* out) {
  for (const auto& info : kDTypes) {
    if (name == info.name) {
      *out = info.type;
      return true;
    }
  }
  return false;
}

size_t dtype_size(DType t) {
  for (const auto& info : kDTypes) {
    if (info.type == t) return info.size;
  }
  return 0;
}

}  // namespace lorarar
