// Bindings for the engine layer (ExecuTorch programs of a bundle).
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/unique_ptr.h>
#include <nanobind/stl/vector.h>

#include "common.h"
#include "engine/program.h"

namespace nb = nanobind;
using lorarar_py::raise;

namespace {

using Array = nb::ndarray<nb::numpy, float>;

Array to_array(lorarar::OwnedTensor&& t) {
  auto* owned = new std::vector<float>(std::move(t.data));
  nb::capsule owner(owned, [](void* p) noexcept { delete static_cast<std::vector<float>*>(p); });
  std::vector<size_t> shape(t.shape.begin(), t.shape.end());
  return Array(owned->data(), shape.size(), shape.data(), owner);
}

}  // namespace

void bind_engine(nb::module_& m) {
  nb::class_<lorarar::ProgramRunner>(m, "Program", "An ExecuTorch program (.pte), run by the native engine.")
      .def_static(
          "open",
          [](const std::string& pte, const std::string& ptd, const std::vector<std::string>& methods) {
            auto r = lorarar::ProgramRunner::open(pte, ptd, methods);
            if (!r.ok()) raise(r.status());
            return std::move(r).get();
          },
          nb::arg("pte"), nb::arg("ptd") = "", nb::arg("methods") = std::vector<std::string>{"forward"})
      .def_prop_ro("method_names", &lorarar::ProgramRunner::method_names)
      .def(
          "run",
          [](lorarar::ProgramRunner& p, const std::string& method,
             const std::vector<nb::ndarray<nb::c_contig, nb::device::cpu>>& inputs) {
            std::vector<lorarar::TensorArg> args;
            for (const auto& a : inputs) {
              lorarar::TensorArg t;
              t.data = a.data();
              for (size_t i = 0; i < a.ndim(); ++i) t.shape.push_back(static_cast<int32_t>(a.shape(i)));
              if (a.dtype() == nb::dtype<float>()) {
                t.kind = lorarar::ScalarKind::kFloat32;
              } else if (a.dtype() == nb::dtype<int64_t>()) {
                t.kind = lorarar::ScalarKind::kInt64;
              } else {
                raise(lorarar::Status(lorarar::Error::kInvalidArgument, "inputs must be float32 or int64"));
              }
              args.push_back(std::move(t));
            }
            lorarar::Result<std::vector<lorarar::OwnedTensor>> r = lorarar::Status(lorarar::Error::kInternal, "");
            {
              nb::gil_scoped_release release;
              r = p.run(method, args);
            }
            if (!r.ok()) raise(r.status());
            std::vector<Array> out;
            for (auto& t : r.get()) out.push_back(to_array(std::move(t)));
            return out;
          },
          nb::arg("method"), nb::arg("inputs"), "Runs a method on C-contiguous float32/int64 arrays.");
}
