// Memory of one ExecuTorch program under the engine's loader (mmap, XNNPACK
// weight cache, planned memory): resident set after each stage and the peak,
// against the program file's size. For programs too big to bundle here (the
// SD 1.5-scale UNet of benchmarks/export_unet.py): a bundle's memory is its
// UNet's plus small programs sharing the same planned memory.
//
//   lorarar_program_memory PROGRAM.pte [METHOD] [--runs N] [--packed-cache FILE]
//
// Prints one JSON object. Inputs are zeros of the shapes the method declares.
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "engine/program.h"

namespace {

// A field of /proc/self/status in kB (-1 where there is none).
long status_kb(const char* field) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const size_t n = std::strlen(field);
  while (std::getline(f, line)) {
    if (line.compare(0, n, field) == 0 && line.size() > n && line[n] == ':') return std::atol(line.c_str() + n + 1);
  }
  return -1;
}

std::string stage(const char* name) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "\"%s\": {\"anon\": %ld, \"file\": %ld}", name, status_kb("RssAnon"),
                status_kb("RssFile"));
  return buf;
}

int fail(const lorarar::Status& s) {
  std::fprintf(stderr, "error: %s\n", s.message().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s PROGRAM.pte [METHOD] [--runs N] [--packed-cache FILE]\n", argv[0]);
    return 2;
  }
  const std::string pte = argv[1];
  std::string method = "forward";
  std::string packed_cache;
  int runs = 1;
  for (int i = 2; i < argc; ++i) {
    if (std::strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
      runs = std::atoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--packed-cache") == 0 && i + 1 < argc) {
      packed_cache = argv[++i];
    } else {
      method = argv[i];
    }
  }
  struct stat st {};
  if (stat(pte.c_str(), &st) != 0) {
    std::fprintf(stderr, "error: %s: no such file\n", pte.c_str());
    return 1;
  }
  std::vector<std::string> stages{stage("start")};
  const auto load_start = std::chrono::steady_clock::now();
  auto runner = lorarar::ProgramRunner::open_program(pte, "", lorarar::Workspace::kShared, packed_cache);
  if (!runner.ok()) return fail(runner.status());
  stages.push_back(stage("program_loaded"));
  auto sizes = runner.get()->planned_sizes({method});
  if (!sizes.ok()) return fail(sizes.status());
  lorarar::PlannedMemory planned;
  planned.reserve(sizes.get());
  planned.allocate();
  size_t planned_bytes = 0;
  for (size_t s : sizes.get()) planned_bytes += s;
  if (auto s = runner.get()->load_methods({method}, &planned); !s.is_ok()) return fail(s);
  stages.push_back(stage("method_loaded"));
  const double load_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - load_start).count();
  auto specs = runner.get()->input_specs(method);
  if (!specs.ok()) return fail(specs.status());
  std::vector<std::vector<int64_t>> buffers;  // int64 elements hold float32 zeros too
  buffers.reserve(specs.get().size());        // the args point into them
  std::vector<lorarar::TensorArg> inputs;
  for (const auto& spec : specs.get()) {
    size_t count = 1;
    for (int32_t d : spec.shape) count *= static_cast<size_t>(d);
    buffers.emplace_back(count, 0);
    lorarar::TensorArg arg;
    arg.data = buffers.back().data();
    arg.shape = spec.shape;
    arg.kind = spec.kind;
    inputs.push_back(std::move(arg));
  }
  stages.push_back(stage("inputs_ready"));
  std::vector<double> ms;
  double checksum = 0;  // the last run's outputs summed: runs with and without a packed cache must agree
  for (int r = 0; r < runs; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    auto out = runner.get()->run(method, inputs);
    if (!out.ok()) return fail(out.status());
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    if (r + 1 == runs) {
      for (const auto& t : out.get()) {
        for (float v : t.data) checksum += v;
      }
    }
  }
  stages.push_back(stage("after_run"));
  std::printf(
      "{\"program\": \"%s\", \"method\": \"%s\", \"program_kb\": %lld, \"planned_kb\": %zu, "
      "\"peak_rss_kb\": %ld, \"load_ms\": %.1f, \"checksum\": %.9g, \"run_ms\": [",
      pte.c_str(), method.c_str(), static_cast<long long>(st.st_size) / 1024, planned_bytes / 1024, status_kb("VmHWM"),
      load_ms, checksum);
  for (size_t i = 0; i < ms.size(); ++i) std::printf("%s%.1f", i ? ", " : "", ms[i]);
  std::printf("], \"rss_kb\": {");
  for (size_t i = 0; i < stages.size(); ++i) std::printf("%s%s", i ? ", " : "", stages[i].c_str());
  std::printf("}}\n");
  return 0;
}
