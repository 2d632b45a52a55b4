// Shared by the binding files: errors travel as StatusError to the
// translator registered in lorarar_py.cc, which raises
// lorarar.errors.LoraError with the Status code.
#pragma once

#include <stdexcept>
#include <utility>

#include "core/result.h"

namespace lorarar_py {

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
