#include "engine/program.h"

#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor_ptr.h>

#include <cstring>

#include "core/json.h"

namespace lorarar {

namespace et = ::executorch;
using et::extension::Module;

struct ProgramRunner::Impl {
  std::string path;
  std::unique_ptr<Module> module;
};

ProgramRunner::~ProgramRunner() = default;

namespace {

Status et_error(const std::string& path, const std::string& what, et::runtime::Error e) {
  return make_error(e == et::runtime::Error::NotFound ? Error::kNotFound : Error::kInvalidFile,
                    path + ": " + what + " (ExecuTorch: " + et::runtime::to_string(e) + ")");
}

}  // namespace

Result<std::unique_ptr<ProgramRunner>> ProgramRunner::open(const std::string& pte, const std::string& ptd,
                                                           const std::vector<std::string>& methods) {
  std::unique_ptr<ProgramRunner> runner(new ProgramRunner());
  runner->impl_ = std::make_unique<Impl>();
  runner->impl_->path = pte;
  auto& module = runner->impl_->module;
  module = ptd.empty() ? std::make_unique<Module>(pte, Module::LoadMode::Mmap)
                       : std::make_unique<Module>(pte, ptd, Module::LoadMode::Mmap);
  if (auto e = module->load(); e != et::runtime::Error::Ok) return et_error(pte, "cannot load program", e);
  for (const auto& m : methods) {
    if (auto e = module->load_method(m); e != et::runtime::Error::Ok) {
      return et_error(pte, "cannot load method " + json::quote(m), e);
    }
  }
  return runner;
}

std::vector<std::string> ProgramRunner::method_names() const {
  std::vector<std::string> out;
  auto names = impl_->module->method_names();
  if (names.ok()) out.assign(names->begin(), names->end());
  return out;
}

template <typename Take>
Status ProgramRunner::execute(const std::string& method, const std::vector<TensorArg>& inputs, size_t expected_outputs,
                              Take take) {
  std::vector<et::extension::TensorPtr> tensors;
  std::vector<et::runtime::EValue> values;
  tensors.reserve(inputs.size());
  values.reserve(inputs.size());
  for (const auto& in : inputs) {
    std::vector<et::aten::SizesType> sizes(in.shape.begin(), in.shape.end());
    const auto type = in.kind == ScalarKind::kInt64 ? et::aten::ScalarType::Long : et::aten::ScalarType::Float;
    // ExecuTorch takes inputs as mutable views; the programs never write them.
    tensors.push_back(et::extension::make_tensor_ptr(std::move(sizes), const_cast<void*>(in.data), type));
    values.emplace_back(tensors.back());
  }
  auto result = impl_->module->execute(method, values);
  if (!result.ok()) return et_error(impl_->path, "running " + json::quote(method) + " failed", result.error());
  const auto& evalues = result.get();
  if (expected_outputs != static_cast<size_t>(-1) && evalues.size() != expected_outputs) {
    return make_error(Error::kInvalidFile, impl_->path + ": " + json::quote(method) + " returned " +
                                               std::to_string(evalues.size()) + " outputs, expected " +
                                               std::to_string(expected_outputs));
  }
  for (size_t i = 0; i < evalues.size(); ++i) {
    if (!evalues[i].isTensor() || evalues[i].toTensor().scalar_type() != et::aten::ScalarType::Float) {
      return make_error(Error::kInvalidFile,
                        impl_->path + ": output " + std::to_string(i) + " is not a float32 tensor");
    }
    const auto& t = evalues[i].toTensor();
    std::vector<int64_t> shape(t.sizes().begin(), t.sizes().end());
    LORARAR_RETURN_IF_ERROR(take(i, t.const_data_ptr<float>(), static_cast<size_t>(t.numel()), std::move(shape)));
  }
  return Status::ok();
}

Status ProgramRunner::run(const std::string& method, const std::vector<TensorArg>& inputs,
                          const std::vector<OutputArg>& outputs) {
  return execute(method, inputs, outputs.size(),
                 [&](size_t i, const float* data, size_t count, std::vector<int64_t>) -> Status {
                   if (count != outputs[i].count) {
                     return make_error(Error::kInvalidFile, impl_->path + ": output " + std::to_string(i) + " has " +
                                                                std::to_string(count) + " elements, expected " +
                                                                std::to_string(outputs[i].count));
                   }
                   std::memcpy(outputs[i].data, data, count * sizeof(float));
                   return Status::ok();
                 });
}

Result<std::vector<OwnedTensor>> ProgramRunner::run(const std::string& method, const std::vector<TensorArg>& inputs) {
  std::vector<OwnedTensor> out;
  Status s = execute(method, inputs, static_cast<size_t>(-1),
                     [&](size_t, const float* data, size_t count, std::vector<int64_t> shape) -> Status {
                       out.push_back({std::vector<float>(data, data + count), std::move(shape)});
                       return Status::ok();
                     });
  if (!s.is_ok()) return s;
  return out;
}

}  // namespace lorarar
