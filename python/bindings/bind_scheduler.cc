// lorarar._native.Scheduler and the noise generator: the native denoising
// schedulers over numpy float32 arrays (tests compare them with diffusers).
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/array.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common.h"
#include "core/json.h"
#include "core/random.h"
#include "core/scheduler.h"

namespace nb = nanobind;
using lorarar::Error;
using lorarar::Scheduler;
using lorarar::SchedulerKind;
using lorarar::Status;
using lorarar_py::check;
using lorarar_py::raise;
using lorarar_py::unwrap;

namespace {

using InArray = nb::ndarray<const float, nb::c_contig, nb::device::cpu>;
using OutArray = nb::ndarray<nb::numpy, float>;

// A new float32 array of `shape`, filled from `src` (or zeros).
OutArray new_array(const std::vector<size_t>& shape, const float* src, float** data) {
  size_t n = 1;
  for (size_t d : shape) n *= d;
  auto* buf = new float[n > 0 ? n : 1]();
  if (src && n > 0) std::memcpy(buf, src, n * sizeof(float));
  nb::capsule owner(buf, [](void* p) noexcept { delete[] static_cast<float*>(p); });
  *data = buf;
  return OutArray(buf, shape.size(), shape.data(), owner);
}

std::vector<size_t> shape_of(const InArray& a) {
  std::vector<size_t> shape(a.ndim());
  for (size_t i = 0; i < a.ndim(); ++i) shape[i] = a.shape(i);
  return shape;
}

OutArray vector_array(const std::vector<float>& v) {
  float* data = nullptr;
  return new_array({v.size()}, v.data(), &data);
}

void check_size(const InArray& a, size_t n, const char* what) {
  if (a.size() != n) {
    raise(Status(Error::kInvalidArgument,
                 std::string(what) + " has " + std::to_string(a.size()) + " values, the sample " + std::to_string(n)));
  }
}

// The core's schedulers are polymorphic; Python holds one through this.
struct PyScheduler {
  std::unique_ptr<Scheduler> s;
  Scheduler* operator->() const { return s.get(); }
};

}  // namespace

void bind_scheduler(nb::module_& m) {
  nb::class_<PyScheduler>(m, "Scheduler",
                          "A diffusion scheduler matching diffusers' DDIMScheduler, EulerDiscreteScheduler or\n"
                          "LCMScheduler for the same scheduler_config.json. Arrays are float32, any shape.")
      .def(
          "__init__",
          [](PyScheduler* self, const std::string& kind, const std::string& config_json) {
            SchedulerKind k;
            if (!lorarar::scheduler_kind_from_name(kind, &k)) {
              raise(Status(Error::kInvalidArgument, "unknown scheduler " + lorarar::json::quote(kind) +
                                                        " (ddim, euler, lcm or a diffusers class name)"));
            }
            new (self) PyScheduler{unwrap(Scheduler::create(k, config_json))};
          },
          nb::arg("kind"), nb::arg("config_json") = "{}",
          "kind: ddim, euler, lcm (or DDIMScheduler, EulerDiscreteScheduler, LCMScheduler); config_json: the\n"
          "text of a diffusers scheduler_config.json, missing fields taking the class's defaults.")
      .def_prop_ro("kind", [](const PyScheduler& p) { return std::string(lorarar::scheduler_kind_name(p->kind())); })
      .def_prop_ro("num_train_timesteps", [](const PyScheduler& p) { return p->num_train_timesteps(); })
      .def_prop_ro(
          "alphas_cumprod", [](const PyScheduler& p) { return vector_array(p->alphas_cumprod()); }, nb::rv_policy::move)
      .def(
          "set_timesteps", [](PyScheduler& p, int n) { check(p->set_timesteps(n)); }, nb::arg("num_inference_steps"))
      .def_prop_ro(
          "num_inference_steps", [](const PyScheduler& p) { return p->num_inference_steps(); },
          "The steps to run: len(timesteps).")
      .def_prop_ro(
          "timesteps", [](const PyScheduler& p) { return vector_array(p->timesteps()); }, nb::rv_policy::move,
          "diffusers' scheduler.timesteps as float32 (integers for DDIM and LCM).")
      .def_prop_ro(
          "sigmas", [](const PyScheduler& p) { return vector_array(p->sigmas()); }, nb::rv_policy::move,
          "Euler's sigmas (len(timesteps) + 1); empty for DDIM and LCM.")
      .def_prop_ro("init_noise_sigma", [](const PyScheduler& p) { return p->init_noise_sigma(); })
      .def_prop_rw(
          "eta", [](const PyScheduler& p) { return p->eta(); },
          [](PyScheduler& p, float eta) { check(p->set_eta(eta)); }, "DDIM's eta (other kinds: 0 only).")
      .def(
          "step_needs_noise", [](const PyScheduler& p, int i) { return p->step_needs_noise(i); }, nb::arg("step_index"))
      .def(
          "scale_model_input",
          [](const PyScheduler& p, InArray sample, int i) {
            float* out = nullptr;
            OutArray result = new_array(shape_of(sample), sample.data(), &out);
            check(p->scale_model_input(out, sample.size(), i));
            return result;
          },
          nb::arg("sample"), nb::arg("step_index"), "scheduler.scale_model_input(sample, timesteps[step_index]).")
      .def(
          "step",
          [](const PyScheduler& p, InArray model_output, InArray sample, int i, std::optional<InArray> noise) {
            const size_t n = sample.size();
            check_size(model_output, n, "model_output");
            if (noise) check_size(*noise, n, "noise");
            float* out = nullptr;
            OutArray result = new_array(shape_of(sample), sample.data(), &out);
            check(p->step(model_output.data(), out, n, i, noise ? noise->data() : nullptr));
            return result;
          },
          nb::arg("model_output"), nb::arg("sample"), nb::arg("step_index"), nb::arg("noise").none() = nb::none(),
          "scheduler.step(model_output, timesteps[step_index], sample).prev_sample, as a new array; noise: the\n"
          "standard normal noise the step draws where step_needs_noise(step_index).");

  m.def(
      "randn",
      [](uint64_t seed, const std::vector<size_t>& shape, uint64_t offset) {
        float* out = nullptr;
        OutArray result = new_array(shape, nullptr, &out);
        size_t n = 1;
        for (size_t d : shape) n *= d;
        lorarar::GaussianNoise(seed, offset).fill(out, n);
        return result;
      },
      nb::arg("seed"), nb::arg("shape"), nb::arg("offset") = 0,
      "Standard normal float32 values number offset, offset + 1, ... of the engine's Philox4x32-10 stream\n"
      "for seed (runtime/core/random.h), in C order.");
  m.def(
      "philox4x32_10",
      [](std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key) { return lorarar::philox4x32_10(counter, key); },
      nb::arg("counter"), nb::arg("key"));
}
