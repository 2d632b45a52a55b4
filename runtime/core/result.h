// Error codes and Result<T>, after ExecuTorch's runtime/core/result.h: the core
// never throws across its API; every fallible call returns a Result or Status
// carrying a code and a human-readable message ("what is wrong", without the
// file name, which the loading layer that knows it prepends).
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>

namespace lorarar {

enum class Error : int {
  kOk = 0,
  kInvalidArgument = 1,  // the caller passed something unusable
  kInvalidFile = 2,      // a file is malformed (truncated, bad header, bad values)
  kUnsupported = 3,      // well-formed, but a kind the engine does not apply
  kNotFound = 4,         // a file, tensor or target is missing
  kIo = 5,               // the OS failed to read or write
  kOutOfMemory = 6,
  kCancelled = 7,
  kInternal = 8,
};

const char* error_name(Error e);

class Status {
 public:
  Status() = default;
  Status(Error code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status ok() { return {}; }

  bool is_ok() const { return code_ == Error::kOk; }
  Error code() const { return code_; }
  const std::string& message() const { return message_; }

  // Prefixes the message with context, e.g. the file or tensor name.
  Status with_context(const std::string& context) const {
    if (is_ok()) return *this;
    return Status(code_, context + ": " + message_);
  }

 private:
  Error code_ = Error::kOk;
  std::string message_;
};

template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {
    assert(!status_.is_ok() && "Result built from an ok Status carries no value");
  }

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& get() & { return *value_; }
  const T& get() const& { return *value_; }
  T&& get() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() & { return *value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

inline Status make_error(Error code, std::string message) { return Status(code, std::move(message)); }

}  // namespace lorarar

#define LORARAR_CONCAT_INNER(a, b) a##b
#define LORARAR_CONCAT(a, b) LORARAR_CONCAT_INNER(a, b)

// Returns the Status from the enclosing function when `expr` fails.
#define LORARAR_RETURN_IF_ERROR(expr)                     \
  do {                                                    \
    ::lorarar::Status lorarar_status_ = (expr);           \
    if (!lorarar_status_.is_ok()) return lorarar_status_; \
  } while (0)

// Declares `lhs` from a Result, returning the error from the enclosing function.
#define LORARAR_ASSIGN_OR_RETURN(lhs, expr) \
  LORARAR_ASSIGN_OR_RETURN_IMPL(LORARAR_CONCAT(lorarar_result_, __LINE__), lhs, expr)
#define LORARAR_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return tmp.status();                 \
  lhs = std::move(tmp).get()
