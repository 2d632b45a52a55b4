// The C API's opaque handles and the error plumbing its source files share: a
// Status becomes a lorarar_status plus a thread-local message, and every C++
// exception (bad_alloc included) stays on this side of the boundary.
#pragma once

#include <exception>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "core/adapter.h"
#include "extension/lora_file.h"
#include "extension/unet_dir.h"
#include "lorarar/lorarar.h"

struct lorarar_base {
  std::shared_ptr<const lorarar::UNetDir> unet;
};
struct lorarar_lora {
  std::shared_ptr<const lorarar::LoraFile> file;
};
struct lorarar_coeffs {
  lorarar::ColumnCoefficients coefficients;
};
struct lorarar_adapter {
  lorarar::Adapter adapter;
  std::vector<std::shared_ptr<const lorarar::LoraFile>> sources;  // keep the factors' maps alive
};

namespace lorarar::c_api {

std::string& last_error();  // per thread

inline lorarar_status fail(const Status& s) {
  last_error() = s.message();
  return static_cast<lorarar_status>(static_cast<int>(s.code()));
}
inline lorarar_status fail(Error e, const std::string& message) { return fail(Status(e, message)); }

template <typename Fn>
lorarar_status guarded(Fn&& fn) {
  try {
    last_error().clear();
    return fn();
  } catch (const std::bad_alloc&) {
    return fail(Error::kOutOfMemory, "out of memory");
  } catch (const std::exception& e) {
    return fail(Error::kInternal, std::string("internal error: ") + e.what());
  } catch (...) {
    return fail(Error::kInternal, "internal error");
  }
}

}  // namespace lorarar::c_api

#define LORARAR_CHECK_ARG(cond, what)                                                       \
  do {                                                                                      \
    if (!(cond)) return ::lorarar::c_api::fail(::lorarar::Error::kInvalidArgument, (what)); \
  } while (0)
