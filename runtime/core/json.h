// A small, strict JSON reader (RFC 8259) for the headers and configs the engine
// reads from untrusted files: safetensors headers, diffusers config.json, peft
// adapter_config.json, bundle manifests. Bounded nesting depth, exact integers
// (safetensors offsets exceed 2^53 in principle), UTF-8 output for \u escapes,
// duplicate object keys rejected. Also a writer for the files the engine emits.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.h"

namespace lorarar::json {

class Value {
 public:
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };
  using Array = std::vector<Value>;
  using Object = std::vector<std::pair<std::string, Value>>;  // file order kept

  Value() = default;
  static Value null() { return Value(); }
  static Value boolean(bool b);
  static Value number(double d);
  static Value integer(int64_t i);
  static Value string(std::string s);
  static Value array(Array a = {});
  static Value object(Object o = {});

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::kNull; }
  bool is_bool() const { return type_ == Type::kBool; }
  bool is_number() const { return type_ == Type::kNumber; }
  bool is_string() const { return type_ == Type::kString; }
  bool is_array() const { return type_ == Type::kArray; }
  bool is_object() const { return type_ == Type::kObject; }

  bool as_bool() const { return bool_; }
  double as_double() const { return number_; }
  // True when the number was written as an integer that fits int64.
  bool is_integer() const { return type_ == Type::kNumber && is_integer_; }
  int64_t as_int() const { return integer_; }
  const std::string& as_string() const { return string_; }
  const Array& as_array() const { return *array_; }
  Array& as_array() { return *array_; }
  const Object& as_object() const { return *object_; }
  Object& as_object() { return *object_; }

  // Object member lookup; nullptr when absent or when this is not an object.
  const Value* find(std::string_view key) const;
  // Appends or replaces a member (objects only).
  void set(std::string key, Value v);

  std::string dump(int indent = -1) const;

 private:
  Type type_ = Type::kNull;
  bool bool_ = false;
  bool is_integer_ = false;
  double number_ = 0;
  int64_t integer_ = 0;
  std::string string_;
  std::shared_ptr<Array> array_;
  std::shared_ptr<Object> object_;
};

struct ParseOptions {
  int max_depth = 64;
};

// Parses exactly one JSON value spanning all of `text` (surrounding whitespace
// allowed). Errors name the byte offset: "invalid JSON at byte 17: ...".
Result<Value> parse(std::string_view text, const ParseOptions& options = {});

// Escapes a string as a JSON string literal, quotes included.
std::string quote(std::string_view s);

}  // namespace lorarar::json
