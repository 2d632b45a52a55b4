// Bindings for the engine layer (ExecuTorch programs of a bundle).
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/function.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/unique_ptr.h>
#include <nanobind/stl/vector.h>

#include "common.h"
#include "engine/engine.h"
#include "engine/program.h"
#include "extension/lora_file.h"

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

// A Python callback the engine calls with the GIL released: it holds the GIL only while calling it. `fn` must
// outlive the generation (the binding's argument does).
std::function<bool(int, int)> holding_gil(const std::function<bool(int, int)>& fn) {
  if (!fn) return nullptr;
  return [&fn](int done, int total) {
    nb::gil_scoped_acquire gil;
    return fn(done, total);
  };
}

}  // namespace

struct PyEngine {
  std::shared_ptr<const lorarar::Engine> engine;
};

lorarar::SchedulerKind scheduler_from(const std::string& name) {
  lorarar::SchedulerKind kind;
  if (!lorarar::scheduler_kind_from_name(name, &kind)) {
    raise(lorarar::Status(lorarar::Error::kInvalidArgument,
                          "unknown scheduler " + lorarar::json::quote(name) + " (ddim, euler, lcm)"));
  }
  return kind;
}

lorarar::ApplyMethod apply_from(const std::string& name) {
  if (name == "hypernet") return lorarar::ApplyMethod::kHypernet;
  if (name == "direct") return lorarar::ApplyMethod::kDirect;
  if (name == "single") return lorarar::ApplyMethod::kSingle;
  raise(lorarar::Status(lorarar::Error::kInvalidArgument,
                        "unknown method " + lorarar::json::quote(name) + " (hypernet, direct, single)"));
}

void bind_engine(nb::module_& m) {
  nb::class_<PyEngine>(m, "Engine", "A loaded bundle: the native on-device pipeline (share it between threads).")
      .def_static(
          "load",
          [](const std::string& dir, int n_threads, bool verify_checksums, bool parallel_contexts,
             const std::string& packed_cache_dir) {
            lorarar::EngineOptions o;
            o.n_threads = n_threads;
            o.verify_checksums = verify_checksums;
            o.parallel_contexts = parallel_contexts;
            o.packed_cache_dir = packed_cache_dir;
            nb::gil_scoped_release release;
            return PyEngine{lorarar_py::unwrap(lorarar::Engine::load(dir, o))};
          },
          nb::arg("bundle_dir"), nb::arg("n_threads") = 0, nb::arg("verify_checksums") = true,
          nb::arg("parallel_contexts") = false, nb::arg("packed_cache_dir") = "",
          "packed_cache_dir: a folder for XNNPACK's packed weights (written on the first load, mapped after); "
          "empty: packed on the heap at every load.")
      .def_prop_ro("image_size",
                   [](const PyEngine& e) {
                     return std::make_pair(e.engine->bundle().image_height, e.engine->bundle().image_width);
                   })
      .def_prop_ro("max_rank", [](const PyEngine& e) { return e.engine->bundle().slot.max_rank; })
      .def_prop_ro("backend", [](const PyEngine& e) { return e.engine->bundle().backend; })
      .def_prop_ro("has_hypernet", [](const PyEngine& e) { return e.engine->bundle().has_hypernet; })
      .def_prop_ro(
          "vae_tiling",
          [](const PyEngine& e) -> std::optional<std::pair<int, int>> {
            const auto& b = e.engine->bundle();
            if (b.vae_tile == 0) return std::nullopt;
            return std::make_pair(b.vae_tile, b.vae_tile_overlap);
          },
          "(tile, overlap) of a tiled VAE decoder, in latent pixels; None when it decodes the whole latent.")
      .def_prop_ro(
          "vae_tiles", [](const PyEngine& e) { return e.engine->bundle().vae_tiles(); },
          "Decoder runs per image: the tiles, or 1.")
      .def(
          "tokenize", [](const PyEngine& e, const std::string& prompt) { return e.engine->tokenizer().encode(prompt); },
          nb::arg("prompt"))
      .def(
          "check_lora",
          [](const PyEngine& e, const lorarar::LoraFile& lora) {
            lorarar_py::check(e.engine->check_lora(lora.model()));
          },
          nb::arg("lora"));

  nb::class_<lorarar::Context>(m, "Context", "Per-thread generation state: its own programs and LoRA slot.")
      .def_static(
          "create",
          [](const PyEngine& e) {
            nb::gil_scoped_release release;
            return lorarar_py::unwrap(lorarar::Context::create(e.engine));
          },
          nb::arg("engine"))
      .def(
          "set_loras",
          [](lorarar::Context& ctx, const lorarar::LoraFile* content, const lorarar::LoraFile* style,
             const std::string& method, float content_scale, float style_scale) {
            lorarar::ApplyOptions o;
            o.method = apply_from(method);
            o.content_scale = content_scale;
            o.style_scale = style_scale;
            lorarar::MergeTimings t;
            lorarar::Status s;
            {
              nb::gil_scoped_release release;
              s = ctx.set_loras(content ? &content->model() : nullptr, style ? &style->model() : nullptr, o, &t);
            }
            lorarar_py::check(s);
            std::map<std::string, double> out = {
                {"hypernet_ms", t.hypernet_ms}, {"fold_ms", t.fold_ms}, {"total_ms", t.total_ms}};
            return out;
          },
          nb::arg("content").none(), nb::arg("style").none(), nb::arg("method") = "hypernet",
          nb::arg("content_scale") = 1.0f, nb::arg("style_scale") = 1.0f,
          "Merges the pair into the slot; returns the timings in ms.")
      .def(
          "hypernet_coefficients",
          [](lorarar::Context& ctx, const lorarar::LoraFile& content, const lorarar::LoraFile& style) {
            auto c = lorarar_py::unwrap(ctx.hypernet_coefficients(content.model(), style.model()));
            return std::map<std::string, std::pair<std::vector<float>, std::vector<float>>>(c.begin(), c.end());
          },
          nb::arg("content"), nb::arg("style"))
      .def_prop_ro("slot_a", [](const lorarar::Context& c) { return c.slot_a(); })
      .def_prop_ro("slot_b", [](const lorarar::Context& c) { return c.slot_b(); })
      .def(
          "generate",
          [](lorarar::Context& ctx, const std::string& prompt, const std::string& negative_prompt, int steps,
             float guidance, const std::string& scheduler, uint64_t seed, std::function<bool(int, int)> progress,
             bool trace, std::function<bool(int, int)> decode_progress) {
            lorarar::GenerateOptions o;
            o.prompt = prompt;
            o.negative_prompt = negative_prompt;
            o.steps = steps;
            o.guidance = guidance;
            o.scheduler = scheduler_from(scheduler);
            o.seed = seed;
            std::vector<float> latents;
            if (trace) o.latent_trace = &latents;
            const auto& b = ctx.engine().bundle();
            const size_t h = static_cast<size_t>(b.image_height), w = static_cast<size_t>(b.image_width);
            auto* pixels = new std::vector<uint8_t>(h * w * 3);
            nb::capsule owner(pixels, [](void* p) noexcept { delete static_cast<std::vector<uint8_t>*>(p); });
            lorarar::GenerateTimings t;
            lorarar::Status s;
            o.progress = holding_gil(progress);
            o.decode_progress = holding_gil(decode_progress);
            {
              nb::gil_scoped_release release;
              s = ctx.generate(o, pixels->data(), pixels->size(), &t);
            }
            lorarar_py::check(s);
            size_t shape[3] = {h, w, 3};
            nb::ndarray<nb::numpy, uint8_t> image(pixels->data(), 3, shape, owner);
            std::map<std::string, double> timings = {{"text_encoder_ms", t.text_encoder_ms},
                                                     {"denoise_ms", t.denoise_ms},
                                                     {"step_ms_median", t.step_ms_median},
                                                     {"decode_ms", t.decode_ms},
                                                     {"total_ms", t.total_ms}};
            return nb::make_tuple(image, timings, latents);
          },
          nb::arg("prompt"), nb::arg("negative_prompt") = "", nb::arg("steps") = 25, nb::arg("guidance") = 5.0f,
          nb::arg("scheduler") = "ddim", nb::arg("seed") = 0, nb::arg("progress").none() = nb::none(),
          nb::arg("trace") = false, nb::arg("decode_progress").none() = nb::none(),
          "Returns (image HxWx3 uint8, timings in ms, latents after each step if trace). progress(step, total) runs "
          "after each denoising step, decode_progress(tile, total) after each VAE decoder run (Engine.vae_tiles "
          "of them); either returning False cancels.")
      .def("cancel", &lorarar::Context::cancel);

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
