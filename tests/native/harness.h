// A minimal test harness: TEST(name) { ... } blocks with CHECK macros, run by
// harness_main.cc; `test_binary [substring]` runs the matching tests. Kept
// dependency-free so the same binaries run under qemu-aarch64 and sanitizers.
#pragma once

#include <cmath>
#include <cstdio>
#include <functional>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "core/result.h"

namespace lorarar_test {

struct TestCase {
  const char* name;
  std::function<void()> fn;
};
std::vector<TestCase>& registry();
void record_failure(const char* file, int line, const std::string& message);

struct Registrar {
  Registrar(const char* name, std::function<void()> fn) { registry().push_back({name, std::move(fn)}); }
};

template <typename T>
void print(std::ostringstream& s, const T& v) {
  if constexpr (std::is_enum_v<T>) {
    s << static_cast<long long>(v);
  } else {
    s << v;
  }
}

template <typename A, typename B>
std::string describe(const A& a, const B& b) {
  std::ostringstream s;
  print(s, a);
  s << " vs ";
  print(s, b);
  return s.str();
}

}  // namespace lorarar_test

#define TEST(name)                                                       \
  static void test_##name();                                             \
  static ::lorarar_test::Registrar registrar_##name(#name, test_##name); \
  static void test_##name()

#define CHECK(cond)                                                                      \
  do {                                                                                   \
    if (!(cond)) ::lorarar_test::record_failure(__FILE__, __LINE__, "CHECK(" #cond ")"); \
  } while (0)

#define CHECK_EQ(a, b)                                                                                   \
  do {                                                                                                   \
    const auto& va_ = (a);                                                                               \
    const auto& vb_ = (b);                                                                               \
    if (!(va_ == vb_))                                                                                   \
      ::lorarar_test::record_failure(__FILE__, __LINE__,                                                 \
                                     "CHECK_EQ(" #a ", " #b "): " + ::lorarar_test::describe(va_, vb_)); \
  } while (0)

#define CHECK_NEAR(a, b, tol)                                                                              \
  do {                                                                                                     \
    const double va_ = (a), vb_ = (b);                                                                     \
    if (!(std::fabs(va_ - vb_) <= (tol)))                                                                  \
      ::lorarar_test::record_failure(__FILE__, __LINE__,                                                   \
                                     "CHECK_NEAR(" #a ", " #b "): " + ::lorarar_test::describe(va_, vb_)); \
  } while (0)

// Asserts that a Result/Status-returning expression failed with this message.
#define CHECK_ERROR(expr, code_, message_)                                                 \
  do {                                                                                     \
    auto r_ = (expr);                                                                      \
    const ::lorarar::Status& s_ = ::lorarar_test::status_of(r_);                           \
    if (s_.is_ok()) {                                                                      \
      ::lorarar_test::record_failure(__FILE__, __LINE__, "expected an error from " #expr); \
    } else {                                                                               \
      CHECK_EQ(static_cast<int>(s_.code()), static_cast<int>(code_));                      \
      CHECK_EQ(s_.message(), std::string(message_));                                       \
    }                                                                                      \
  } while (0)

namespace lorarar_test {
template <typename R>
const auto& status_of(const R& r) {
  if constexpr (std::is_same_v<R, ::lorarar::Status>) {
    return r;
  } else {
    return r.status();
  }
}
}  // namespace lorarar_test
