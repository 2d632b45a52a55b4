// lorarar._native: Python bindings over the native engine. The parser,
// merge and fuse used from Python are these; the PyTorch code in the package
// is only the reference the tests compare against.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <memory>

#include "common.h"
#include "core/adapter.h"
#include "core/fuse.h"
#include "extension/adapter_io.h"
#include "extension/lora_file.h"
#include "extension/unet_dir.h"
#include "lorarar/version.h"

namespace nb = nanobind;
using namespace lorarar;
using lorarar_py::check;
using lorarar_py::raise;
using lorarar_py::StatusError;
using lorarar_py::unwrap;

void bind_tokenizer(nb::module_& m);  // bind_tokenizer.cc
void bind_scheduler(nb::module_& m);  // bind_scheduler.cc
#ifdef LORARAR_WITH_ENGINE
void bind_engine(nb::module_& m);  // bind_engine.cc
#endif

namespace {

using FloatArray = nb::ndarray<nb::numpy, float, nb::ndim<2>>;
using Vector = nb::ndarray<const float, nb::ndim<1>, nb::c_contig, nb::device::cpu>;

FloatArray new_array(int64_t rows, int64_t cols, float** data) {
  auto* buf = new float[static_cast<size_t>(rows * cols)];
  nb::capsule owner(buf, [](void* p) noexcept { delete[] static_cast<float*>(p); });
  *data = buf;
  return FloatArray(buf, {static_cast<size_t>(rows), static_cast<size_t>(cols)}, owner);
}

struct PyAdapter {
  Adapter adapter;
  std::vector<std::shared_ptr<const LoraFile>> sources;  // keep factor maps alive
};

struct LayerInfo {
  std::string name;
  int64_t rank, in_features, out_features;
  float alpha, scale;
  bool alpha_in_file, conv1x1;
  std::string dtype;
};

LayerInfo layer_info(const LoraLayer& l) {
  return {l.module, l.rank,          l.in_features, l.out_features,          l.alpha,
          l.scale,  l.alpha_in_file, l.conv1x1,     dtype_name(l.down.dtype)};
}

ColumnCoefficients to_coefficients(const std::map<std::string, std::pair<Vector, Vector>>& in) {
  ColumnCoefficients out;
  for (const auto& [module, pair] : in) {
    out[module] = {std::vector<float>(pair.first.data(), pair.first.data() + pair.first.shape(0)),
                   std::vector<float>(pair.second.data(), pair.second.data() + pair.second.shape(0))};
  }
  return out;
}

FuseOptions fuse_options(const std::string& kernel, ThreadPool* pool) {
  FuseOptions o;
  if (!kernel_isa_from_name(kernel.c_str(), &o.isa)) {
    raise(Status(Error::kInvalidArgument, "unknown kernel " + json::quote(kernel) + " (auto, scalar, avx2, neon)"));
  }
  if (!kernel_isa_available(o.isa)) {
    raise(Status(Error::kUnsupported, "kernel " + kernel + " is not available on this CPU"));
  }
  o.pool = pool;
  return o;
}

DType dtype_from(const std::string& name) {
  if (name == "f32" || name == "float32") return DType::kF32;
  if (name == "f16" || name == "float16") return DType::kF16;
  if (name == "bf16" || name == "bfloat16") return DType::kBF16;
  raise(Status(Error::kInvalidArgument, "unknown dtype " + json::quote(name) + " (f32, f16, bf16)"));
}

}  // namespace

NB_MODULE(_native, m) {
  m.doc() = "Native LoRA engine: formats, merge, fuse";
  m.def("version", [] { return std::string(LORARAR_VERSION_STRING); });

  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const StatusError& e) {
      nb::object cls = nb::module_::import_("lorarar.errors").attr("LoraError");
      nb::object err = cls(e.what(), static_cast<int>(e.code));
      PyErr_SetObject(cls.ptr(), err.ptr());
    }
  });

  m.def("kernels_available", [] {
    std::vector<std::string> out;
    for (KernelIsa isa : {KernelIsa::kScalar, KernelIsa::kAvx2, KernelIsa::kNeon}) {
      if (kernel_isa_available(isa)) out.push_back(kernel_isa_name(isa));
    }
    return out;
  });
  m.def("default_kernel", [] { return std::string(kernel_isa_name(resolve_kernel_isa(KernelIsa::kAuto))); });

  nb::class_<ThreadPool>(m, "ThreadPool", "Worker threads for fusing; 0 means one per hardware thread.")
      .def(nb::init<int>(), nb::arg("num_threads") = 0)
      .def_prop_ro("num_threads", &ThreadPool::num_threads);

  nb::class_<LayerInfo>(m, "LayerInfo", "One LoRA layer: dW = scale * B A on the module `name`.")
      .def_ro("name", &LayerInfo::name, "diffusers module path")
      .def_ro("rank", &LayerInfo::rank)
      .def_ro("in_features", &LayerInfo::in_features)
      .def_ro("out_features", &LayerInfo::out_features)
      .def_ro("alpha", &LayerInfo::alpha, "alpha (= rank where the file carries none)")
      .def_ro("scale", &LayerInfo::scale)
      .def_ro("alpha_in_file", &LayerInfo::alpha_in_file)
      .def_ro("conv1x1", &LayerInfo::conv1x1)
      .def_ro("dtype", &LayerInfo::dtype, "factor dtype in the file: F32, F16 or BF16");

  nb::class_<UNetDir>(m, "BaseModel", "A diffusers UNet folder: its config and the layers a LoRA may target.")
      .def_static(
          "open", [](const std::string& path) { return std::const_pointer_cast<UNetDir>(unwrap(UNetDir::open(path))); },
          nb::arg("path"))
      .def_prop_ro("dir", &UNetDir::dir)
      .def_prop_ro("config_json", [](const UNetDir& u) { return u.config().dump(); })
      .def_prop_ro("targets", [](const UNetDir& u) {
        std::vector<std::tuple<std::string, int64_t, int64_t>> out;
        for (const auto& t : u.base().targets()) out.emplace_back(t.module, t.out_features, t.in_features);
        return out;
      });

  nb::class_<LoraFile>(m, "LoraFile", "A parsed LoRA file (memory-mapped).")
      .def_static(
          "load",
          [](const std::string& path, std::shared_ptr<UNetDir> base, bool check_values) {
            LoraFile::Options o;
            o.base = base ? &base->base() : nullptr;
            o.check_values = check_values;
            return std::const_pointer_cast<LoraFile>(unwrap(LoraFile::load(path, o)));
          },
          nb::arg("path"), nb::arg("base").none() = nb::none(), nb::arg("check_values") = true)
      .def_static(
          "from_bytes",
          [](nb::bytes data, const std::string& name, const std::string& adapter_config_json,
             std::shared_ptr<UNetDir> base, bool check_values) {
            LoraFile::Options o;
            o.base = base ? &base->base() : nullptr;
            o.check_values = check_values;
            return std::const_pointer_cast<LoraFile>(
                unwrap(LoraFile::from_memory(data.c_str(), data.size(), name, adapter_config_json, o)));
          },
          nb::arg("data"), nb::arg("name"), nb::arg("adapter_config_json") = "", nb::arg("base").none() = nb::none(),
          nb::arg("check_values") = true,
          "The bytes of a .safetensors LoRA (copied); `name` stands for the path in errors.")
      .def_prop_ro("path", &LoraFile::path)
      .def_prop_ro("format", [](const LoraFile& f) { return std::string(lora_format_name(f.model().format)); })
      .def_prop_ro("text_encoder_keys", [](const LoraFile& f) { return f.model().text_encoder_keys; })
      .def_prop_ro("metadata", [](const LoraFile& f) { return f.model().metadata; })
      .def_prop_ro("layers",
                   [](const LoraFile& f) {
                     std::vector<LayerInfo> out;
                     for (const auto& l : f.model().layers) out.push_back(layer_info(l));
                     return out;
                   })
      .def(
          "factors",
          [](const LoraFile& f, const std::string& module) {
            const LoraLayer* l = f.model().find(module);
            if (!l) raise(Status(Error::kNotFound, f.path() + ": no layer " + json::quote(module)));
            float *a, *b;
            FloatArray A = new_array(l->rank, l->in_features, &a);
            FloatArray B = new_array(l->out_features, l->rank, &b);
            for (size_t i = 0; i < l->down.numel(); ++i) a[i] = l->down.at(i);
            for (size_t i = 0; i < l->up.numel(); ++i) b[i] = l->up.at(i);
            return std::make_pair(A, B);
          },
          nb::arg("module"), "(A, B) as float32 arrays: A is rank x in, B is out x rank (scale not applied).");

  nb::class_<PyAdapter>(m, "Adapter", "A folded adapter: the merge of LoRAs, itself a LoRA.")
      .def_static(
          "single",
          [](std::shared_ptr<LoraFile> lora, float scale) {
            return std::make_shared<PyAdapter>(PyAdapter{single_adapter(lora->model(), scale), {lora}});
          },
          nb::arg("lora"), nb::arg("scale") = 1.0f)
      .def_static(
          "merge",
          [](std::shared_ptr<LoraFile> content, std::shared_ptr<LoraFile> style, const std::string& method,
             float content_scale, float style_scale,
             std::optional<std::map<std::string, std::pair<Vector, Vector>>> coefficients) {
            MergeOptions o;
            if (method == "direct") {
              o.method = MergeMethod::kDirect;
            } else if (method == "columns") {
              o.method = MergeMethod::kColumns;
            } else {
              raise(Status(Error::kInvalidArgument,
                           "unknown merge method " + json::quote(method) + " (direct, columns)"));
            }
            o.content_scale = content_scale;
            o.style_scale = style_scale;
            ColumnCoefficients coeffs;
            if (coefficients) {
              coeffs = to_coefficients(*coefficients);
              o.coefficients = &coeffs;
            }
            auto merged = unwrap(merge(content->model(), style->model(), o));
            return std::make_shared<PyAdapter>(PyAdapter{std::move(merged), {content, style}});
          },
          nb::arg("content"), nb::arg("style"), nb::arg("method") = "direct", nb::arg("content_scale") = 1.0f,
          nb::arg("style_scale") = 1.0f, nb::arg("coefficients").none() = nb::none())
      .def_prop_ro("layers",
                   [](const PyAdapter& a) {
                     std::vector<std::tuple<std::string, int64_t, int64_t, int64_t>> out;
                     for (const auto& l : a.adapter.layers)
                       out.emplace_back(l.module, l.rank(), l.in_features, l.out_features);
                     return out;
                   })
      .def(
          "materialize",
          [](const PyAdapter& a, const std::string& module) {
            const AdapterLayer* l = a.adapter.find(module);
            if (!l) raise(Status(Error::kNotFound, "the adapter has no layer " + json::quote(module)));
            float *pa, *pb;
            FloatArray A = new_array(l->rank(), l->in_features, &pa);
            FloatArray B = new_array(l->out_features, l->rank(), &pb);
            l->pack_a(0, l->rank(), 0, l->in_features, pa, l->in_features);
            l->pack_b(pb);
            return std::make_pair(A, B);
          },
          nb::arg("module"), "(A', B') as float32 arrays with all scales folded into A'.")
      .def(
          "save",
          [](const PyAdapter& a, const std::string& path, const std::string& dtype) {
            AdapterSaveOptions o;
            o.dtype = dtype_from(dtype);
            check(save_adapter(a.adapter, path, o));
          },
          nb::arg("path"), nb::arg("dtype") = "f32")
      .def(
          "fuse_into",
          [](const PyAdapter& a, const std::string& module, nb::ndarray<nb::c_contig, nb::device::cpu> weight,
             float scale, ThreadPool* pool, const std::string& kernel) {
            const AdapterLayer* l = a.adapter.find(module);
            if (!l) raise(Status(Error::kNotFound, "the adapter has no layer " + json::quote(module)));
            WeightView w;
            w.data = weight.data();
            if (weight.dtype() == nb::dtype<float>()) {
              w.dtype = DType::kF32;
            } else if (weight.dtype().code == static_cast<uint8_t>(nb::dlpack::dtype_code::Float) &&
                       weight.dtype().bits == 16) {
              w.dtype = DType::kF16;
            } else if (weight.dtype().code == static_cast<uint8_t>(nb::dlpack::dtype_code::Bfloat) &&
                       weight.dtype().bits == 16) {
              w.dtype = DType::kBF16;
            } else {
              raise(Status(Error::kInvalidArgument, "weight must be float32, float16 or bfloat16"));
            }
            if (weight.ndim() != 2 && weight.ndim() != 4) raise(Status(Error::kInvalidArgument, "weight must be 2-D"));
            w.out_features = static_cast<int64_t>(weight.shape(0));
            w.in_features = static_cast<int64_t>(weight.size()) / std::max<int64_t>(w.out_features, 1);
            nb::gil_scoped_release release;
            check(fuse_layer(w, *l, scale, fuse_options(kernel, pool)));
          },
          nb::arg("module"), nb::arg("weight"), nb::arg("scale") = 1.0f, nb::arg("pool").none() = nb::none(),
          nb::arg("kernel") = "auto", "Adds scale * B'A' to a C-contiguous (out, in) weight, in place.")
      .def(
          "fuse_unet_dir",
          [](const PyAdapter& a, std::shared_ptr<UNetDir> base, const std::string& out_dir, float scale, int threads,
             const std::string& kernel) {
            nb::gil_scoped_release release;
            ThreadPool pool(threads);
            FuseDirOptions o;
            o.scale = scale;
            o.fuse = fuse_options(kernel, &pool);
            check(fuse_unet_dir(*base, a.adapter, out_dir, o));
          },
          nb::arg("base"), nb::arg("out_dir"), nb::arg("scale") = 1.0f, nb::arg("threads") = 0,
          nb::arg("kernel") = "auto");

#ifdef LORARAR_WITH_ENGINE
  bind_engine(m);
#endif

  m.def(
      "load_coefficients",
      [](const std::string& path) {
        auto c = unwrap(load_coefficients(path));
        std::map<std::string, std::pair<std::vector<float>, std::vector<float>>> out(c.begin(), c.end());
        return out;
      },
      nb::arg("path"));
  m.def(
      "save_coefficients",
      [](const std::map<std::string, std::pair<Vector, Vector>>& coefficients, const std::string& path) {
        check(save_coefficients(to_coefficients(coefficients), path));
      },
      nb::arg("coefficients"), nb::arg("path"));

  bind_scheduler(m);
  bind_tokenizer(m);
}
