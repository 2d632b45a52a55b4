// Shared by the binding files: a Status becomes a C++ exception here and
// lorarar.errors.LoraError in Python (the translator in lorarar_py.cc).
#pragma once

#include <stdexcept>
#include <utility>

#include "core/result.h"

namespace lorarar_py {

// Carries a Status to the translator, which raises lorarar.errors.LoraError.
struct StatusError : std::runtime_error {
  explicit StatusError(const lorarar::Status& s) : std::runtime_error(s.message()), code(s.code()) {}
  lorarar::Error code;
};

[[noreturn]] inline void raise(const lorarar::Status& s) { throw StatusError(s); }

template <typename T>
T unwrap(lorarar::Result<T>&& r) {
  if (!r.ok()) raise(r.status());
  return std::move(r).get();
}

inline void check(const lorarar::Status& s) {
  if (!s.is_ok()) raise(s);
}

}  // namespace lorarar_py
