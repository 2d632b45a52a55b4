#include "engine/program.h"

#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor_ptr.h>
#include <executorch/runtime/backend/backend_options_map.h>
#include <executorch/runtime/backend/options.h>
#include <executorch/runtime/core/hierarchical_allocator.h>

#include <algorithm>
#include <cstring>

#include "core/json.h"

namespace lorarar {

namespace et = ::executorch;
using et::extension::Module;

// A method's view of a PlannedMemory: ExecuTorch keeps pointers to both.
struct MethodMemory {
  std::vector<et::runtime::Span<uint8_t>> spans;
  std::unique_ptr<et::runtime::HierarchicalAllocator> allocator;
};

struct ProgramRunner::Impl {
  std::string path;
  // Destroyed after the module, whose methods point into them.
  std::vector<std::unique_ptr<MethodMemory>> method_memory;
  std::unique_ptr<Module> module;
};

ProgramRunner::~ProgramRunner() = default;

namespace {
// ExecuTorch's memory planning aligns tensors to 16 bytes; a cache line is safer for kernels.
constexpr size_t kPlannedAlignment = 64;
}  // namespace

void PlannedMemory::reserve(const std::vector<size_t>& sizes) {
  if (sizes_.size() < sizes.size()) sizes_.resize(sizes.size(), 0);
  for (size_t i = 0; i < sizes.size(); ++i) sizes_[i] = std::max(sizes_[i], sizes[i]);
}

void PlannedMemory::allocate() {
  buffers_.resize(sizes_.size());
  aligned_.resize(sizes_.size());
  for (size_t i = 0; i < sizes_.size(); ++i) {
    buffers_[i].assign(sizes_[i] + kPlannedAlignment, 0);
    const auto address = reinterpret_cast<uintptr_t>(buffers_[i].data());
    aligned_[i] = buffers_[i].data() + ((kPlannedAlignment - address % kPlannedAlignment) % kPlannedAlignment);
  }
}

namespace {

Status et_error(const std::string& path, const std::string& what, et::runtime::Error e) {
  return make_error(e == et::runtime::Error::NotFound ? Error::kNotFound : Error::kInvalidFile,
                    path + ": " + what + " (ExecuTorch: " + et::runtime::to_string(e) + ")");
}

}  // namespace

Result<std::unique_ptr<ProgramRunner>> ProgramRunner::open(const std::string& pte, const std::string& ptd,
                                                           const std::vector<std::string>& methods,
                                                           Workspace workspace) {
  LORARAR_ASSIGN_OR_RETURN(std::unique_ptr<ProgramRunner> runner, open_program(pte, ptd, workspace));
  LORARAR_RETURN_IF_ERROR(runner->load_methods(methods, nullptr));
  return runner;
}

Result<std::unique_ptr<ProgramRunner>> ProgramRunner::open_program(const std::string& pte, const std::string& ptd,
                                                                   Workspace workspace,
                                                                   const std::string& packed_cache) {
  std::unique_ptr<ProgramRunner> runner(new ProgramRunner());
  runner->impl_ = std::make_unique<Impl>();
  runner->impl_->path = pte;
  auto& module = runner->impl_->module;
  module = ptd.empty() ? std::make_unique<Module>(pte, Module::LoadMode::Mmap)
                       : std::make_unique<Module>(pte, ptd, Module::LoadMode::Mmap);
  // XNNPACK load options, per program (not process-wide: the host app may run
  // other ExecuTorch models with its own settings). The weight cache makes every
  // instance of a program share one copy of its packed weights (keyed by the
  // sha256 of the weight bytes the exporter names them with, so two bundles in
  // one process never mix up theirs); the workspace
  // mode is ExecuTorch's WorkspaceSharingMode (1 per model, 2 global).
  et::runtime::BackendOptions<3> xnnpack;
  xnnpack.set_option("weight_cache_enabled", true);
  xnnpack.set_option("workspace_sharing_mode", workspace == Workspace::kShared ? 2 : 1);
  if (!packed_cache.empty()) {
    if (packed_cache.size() >= et::runtime::kMaxOptionValueLength) {
      return make_error(Error::kInvalidArgument, packed_cache + ": packed weight cache path longer than " +
                                                     std::to_string(et::runtime::kMaxOptionValueLength - 1) +
                                                     " bytes (ExecuTorch's option limit)");
    }
    xnnpack.set_option("packed_cache_path", packed_cache.c_str());
  }
  et::runtime::LoadBackendOptionsMap options;
  if (auto e = options.set_options("XnnpackBackend", xnnpack.view()); e != et::runtime::Error::Ok) {
    return et_error(pte, "cannot set XNNPACK options", e);
  }
  if (auto e = module->load(options); e != et::runtime::Error::Ok) return et_error(pte, "cannot load program", e);
  return runner;
}

Result<std::vector<size_t>> ProgramRunner::planned_sizes(const std::vector<std::string>& methods) const {
  std::vector<size_t> sizes;
  for (const auto& m : methods) {
    auto meta = impl_->module->method_meta(m);
    if (!meta.ok()) return et_error(impl_->path, "cannot read method " + json::quote(m), meta.error());
    const size_t n = meta->num_memory_planned_buffers();
    if (sizes.size() < n) sizes.resize(n, 0);
    for (size_t i = 0; i < n; ++i) {
      auto size = meta->memory_planned_buffer_size(i);
      if (!size.ok()) return et_error(impl_->path, "cannot read method " + json::quote(m), size.error());
      sizes[i] = std::max(sizes[i], static_cast<size_t>(size.get()));
    }
  }
  return sizes;
}

Status ProgramRunner::load_methods(const std::vector<std::string>& methods, PlannedMemory* planned) {
  for (const auto& m : methods) {
    et::runtime::HierarchicalAllocator* allocator = nullptr;
    if (planned) {
      LORARAR_ASSIGN_OR_RETURN(std::vector<size_t> sizes, planned_sizes({m}));
      auto memory = std::make_unique<MethodMemory>();
      for (size_t i = 0; i < sizes.size(); ++i) {
        if (i >= planned->aligned_.size() || sizes[i] > planned->sizes_[i]) {
          return make_error(Error::kInternal, impl_->path + ": method " + json::quote(m) +
                                                  " needs more planned memory than was reserved");
        }
        memory->spans.emplace_back(planned->aligned_[i], sizes[i]);
      }
      memory->allocator = std::make_unique<et::runtime::HierarchicalAllocator>(
          et::runtime::Span<et::runtime::Span<uint8_t>>(memory->spans.data(), memory->spans.size()));
      allocator = memory->allocator.get();
      impl_->method_memory.push_back(std::move(memory));
    }
    if (auto e = impl_->module->load_method(m, allocator); e != et::runtime::Error::Ok) {
      return et_error(impl_->path, "cannot load method " + json::quote(m), e);
    }
  }
  return Status::ok();
}

std::vector<std::string> ProgramRunner::method_names() const {
  std::vector<std::string> out;
  auto names = impl_->module->method_names();
  if (names.ok()) out.assign(names->begin(), names->end());
  return out;
}

Result<std::vector<ProgramRunner::InputSpec>> ProgramRunner::input_specs(const std::string& method) const {
  auto meta = impl_->module->method_meta(method);
  if (!meta.ok()) return et_error(impl_->path, "cannot read method " + json::quote(method), meta.error());
  std::vector<InputSpec> specs;
  for (size_t i = 0; i < meta->num_inputs(); ++i) {
    auto t = meta->input_tensor_meta(i);
    if (!t.ok()) return et_error(impl_->path, "input " + std::to_string(i) + " is not a tensor", t.error());
    InputSpec spec;
    spec.shape.assign(t->sizes().begin(), t->sizes().end());
    if (t->scalar_type() == et::aten::ScalarType::Long) {
      spec.kind = ScalarKind::kInt64;
    } else if (t->scalar_type() != et::aten::ScalarType::Float) {
      return make_error(Error::kInvalidFile, impl_->path + ": input " + std::to_string(i) + " of " +
                                                 json::quote(method) + " is neither float32 nor int64");
    }
    specs.push_back(std::move(spec));
  }
  return specs;
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
