#include <cmath>

#include "core/adapter.h"
#include "core/fuse.h"
#include "harness.h"
#include "test_util.h"

using namespace lorarar;
using namespace lorarar_test;

namespace {

struct Pair {
  std::vector<uint8_t> bytes;
  SafetensorsView view;
  LoraModel content, style;
};

// Two LoRAs on the same layer (content rank rc, style rank rs), factors in dtype.
std::unique_ptr<Pair> make_pair(int64_t in, int64_t out, int64_t rc, int64_t rs, DType dtype) {
  auto p = std::make_unique<Pair>();
  std::vector<TestTensor> t;
  add_lora_layer(&t, "c.lora_A.weight", "c.lora_B.weight", rc, in, out, 11, dtype);
  add_lora_layer(&t, "s.lora_A.weight", "s.lora_B.weight", rs, in, out, 21, dtype);
  p->bytes = make_safetensors(t);
  p->view = SafetensorsView::parse(p->bytes.data(), p->bytes.size()).get();
  auto layer = [&](const char* prefix, int64_t r, float alpha) {
    LoraLayer l;
    l.module = "layer";
    l.down = *p->view.find(std::string(prefix) + ".lora_A.weight");
    l.up = *p->view.find(std::string(prefix) + ".lora_B.weight");
    l.rank = r;
    l.in_features = in;
    l.out_features = out;
    l.alpha = alpha;
    l.scale = alpha / static_cast<float>(r);
    return l;
  };
  p->content.layers.push_back(layer("c", rc, 3.0f));
  p->style.layers.push_back(layer("s", rs, static_cast<float>(rs)));
  return p;
}

// dW[i][j] in double, straight from the definition.
std::vector<double> reference_delta(const Pair& p, const std::vector<float>& mc, const std::vector<float>& ms, float wc,
                                    float ws) {
  const auto& c = p.content.layers[0];
  const auto& s = p.style.layers[0];
  std::vector<double> d(static_cast<size_t>(c.out_features * c.in_features), 0.0);
  for (int64_t i = 0; i < c.out_features; ++i) {
    for (int64_t j = 0; j < c.in_features; ++j) {
      double acc = 0;
      for (int64_t k = 0; k < c.rank; ++k) {
        acc += double(c.scale) * wc * (mc.empty() ? 1.0 : mc[j]) * c.up.at(i * c.rank + k) *
               c.down.at(k * c.in_features + j);
      }
      for (int64_t k = 0; k < s.rank; ++k) {
        acc += double(s.scale) * ws * (ms.empty() ? 1.0 : ms[j]) * s.up.at(i * s.rank + k) *
               s.down.at(k * s.in_features + j);
      }
      d[static_cast<size_t>(i * c.in_features + j)] = acc;
    }
  }
  return d;
}

std::vector<KernelIsa> available_isas() {
  std::vector<KernelIsa> out;
  for (KernelIsa isa : {KernelIsa::kScalar, KernelIsa::kAvx2, KernelIsa::kNeon}) {
    if (kernel_isa_available(isa)) out.push_back(isa);
  }
  return out;
}

}  // namespace

TEST(fuse_matches_the_definition_for_every_kernel_dtype_and_odd_shape) {
  struct Shape {
    int64_t in, out, rc, rs;
  } shapes[] = {{37, 29, 3, 5}, {300, 131, 8, 4}, {16, 6, 1, 1}, {520, 7, 16, 16}};
  ThreadPool pool(3);
  for (const auto& sh : shapes) {
    for (DType factor_dtype : {DType::kF32, DType::kF16}) {
      auto p = make_pair(sh.in, sh.out, sh.rc, sh.rs, factor_dtype);
      std::vector<float> mc = random_values(static_cast<size_t>(sh.in), 5),
                         ms = random_values(static_cast<size_t>(sh.in), 6);
      ColumnCoefficients coeffs = {{"layer", {mc, ms}}};
      MergeOptions options;
      options.method = MergeMethod::kColumns;
      options.coefficients = &coeffs;
      options.content_scale = 0.7f;
      options.style_scale = 1.3f;
      auto adapter = merge(p->content, p->style, options);
      CHECK(adapter.ok());
      CHECK_EQ(adapter->layers[0].rank(), sh.rc + sh.rs);
      const auto delta = reference_delta(*p, mc, ms, 0.7f, 1.3f);
      const std::vector<float> base = random_values(static_cast<size_t>(sh.in * sh.out), 99);
      for (KernelIsa isa : available_isas()) {
        for (DType wt : {DType::kF32, DType::kF16, DType::kBF16}) {
          std::vector<uint8_t> w(base.size() * dtype_size(wt));
          for (size_t i = 0; i < base.size(); ++i) store_float(w.data(), wt, i, base[i]);
          WeightView view{w.data(), wt, sh.out, sh.in};
          FuseOptions fo;
          fo.isa = isa;
          fo.pool = &pool;
          CHECK(fuse_layer(view, adapter->layers[0], 0.5f, fo).is_ok());
          // Tolerance: one rounding to the weight dtype, plus float32 accumulation.
          const double rel = wt == DType::kF32 ? 1e-5 : wt == DType::kF16 ? 1e-3 : 8e-3;
          double worst = 0;
          for (size_t i = 0; i < base.size(); ++i) {
            const double want = double(base[i]) + 0.5 * delta[i];
            const double got = load_float(w.data(), wt, i);
            worst = std::max(worst, std::fabs(got - want) / (1.0 + std::fabs(want)));
          }
          if (worst > rel) {
            std::fprintf(stderr, "  isa=%s wt=%s shape=%lldx%lld worst=%g\n", kernel_isa_name(isa), dtype_name(wt),
                         (long long)sh.out, (long long)sh.in, worst);
          }
          CHECK(worst <= rel);
        }
      }
    }
  }
}

TEST(fuse_kernels_agree_bitwise_on_f32_except_fma_rounding) {
  auto p = make_pair(64, 48, 4, 4, DType::kF32);
  auto adapter = merge(p->content, p->style, {});
  CHECK(adapter.ok());
  std::vector<float> ref(64 * 48, 0.25f);
  FuseOptions scalar;
  scalar.isa = KernelIsa::kScalar;
  CHECK(fuse_layer({ref.data(), DType::kF32, 48, 64}, adapter->layers[0], 1.0f, scalar).is_ok());
  for (KernelIsa isa : available_isas()) {
    std::vector<float> w(64 * 48, 0.25f);
    FuseOptions fo;
    fo.isa = isa;
    CHECK(fuse_layer({w.data(), DType::kF32, 48, 64}, adapter->layers[0], 1.0f, fo).is_ok());
    for (size_t i = 0; i < w.size(); ++i) CHECK_NEAR(w[i], ref[i], 1e-6);
  }
}

TEST(fuse_rejects_mismatched_weights) {
  auto p = make_pair(8, 8, 2, 2, DType::kF32);
  Adapter a = single_adapter(p->content, 1.0f);
  std::vector<float> w(64);
  CHECK_ERROR(fuse_layer({w.data(), DType::kF32, 4, 16}, a.layers[0], 1.0f), Error::kInvalidArgument,
              "base weight of \"layer\" is 4x16 (out x in), the adapter is 8x8");
  CHECK_ERROR(fuse_layer({w.data(), DType::kI32, 8, 8}, a.layers[0], 1.0f), Error::kUnsupported,
              "cannot fuse into I32 weights of \"layer\"; F32, F16 or BF16 only");
  CHECK_ERROR(fuse_layer({w.data(), DType::kF32, 8, 8}, a.layers[0], NAN), Error::kInvalidArgument,
              "fuse scale is not finite");
}

TEST(merge_checks_coefficients) {
  auto p = make_pair(8, 8, 2, 2, DType::kF32);
  ColumnCoefficients short_coeffs = {{"layer", {std::vector<float>(7, 1.0f), std::vector<float>(8, 1.0f)}}};
  MergeOptions options;
  options.method = MergeMethod::kColumns;
  options.coefficients = &short_coeffs;
  CHECK_ERROR(merge(p->content, p->style, options), Error::kInvalidArgument,
              "coefficients for \"layer\" (content) have 7 entries, the layer has 8 input columns");
  ColumnCoefficients unknown = {{"other", {std::vector<float>(8, 1.0f), std::vector<float>(8, 1.0f)}}};
  options.coefficients = &unknown;
  CHECK_ERROR(merge(p->content, p->style, options), Error::kNotFound,
              "coefficients given for \"other\", which neither LoRA has");
  ColumnCoefficients nan = {{"layer", {std::vector<float>(8, NAN), std::vector<float>(8, 1.0f)}}};
  options.coefficients = &nan;
  CHECK_ERROR(merge(p->content, p->style, options), Error::kInvalidArgument,
              "coefficients for \"layer\" (content) are not finite");
  options.coefficients = nullptr;
  CHECK_ERROR(merge(p->content, p->style, options), Error::kInvalidArgument,
              "the columns merge needs column coefficients");
}

TEST(materialised_adapter_equals_the_column_merge) {
  auto p = make_pair(24, 10, 3, 2, DType::kBF16);
  std::vector<float> mc = random_values(24, 1), ms = random_values(24, 2);
  ColumnCoefficients coeffs = {{"layer", {mc, ms}}};
  MergeOptions options;
  options.method = MergeMethod::kColumns;
  options.coefficients = &coeffs;
  auto a = merge(p->content, p->style, options);
  CHECK(a.ok());
  const auto& l = a->layers[0];
  std::vector<float> A(static_cast<size_t>(5 * 24)), B(static_cast<size_t>(10 * 5));
  l.pack_a(0, 5, 0, 24, A.data(), 24);
  l.pack_b(B.data());
  const auto delta = reference_delta(*p, mc, ms, 1.0f, 1.0f);
  for (int64_t i = 0; i < 10; ++i) {
    for (int64_t j = 0; j < 24; ++j) {
      double acc = 0;
      for (int64_t k = 0; k < 5; ++k)
        acc += double(B[static_cast<size_t>(i * 5 + k)]) * A[static_cast<size_t>(k * 24 + j)];
      CHECK_NEAR(acc, delta[static_cast<size_t>(i * 24 + j)], 1e-6);
    }
  }
}

TEST(thread_pool_runs_every_task_once) {
  ThreadPool pool(4);
  for (int round = 0; round < 200; ++round) {
    const size_t n = static_cast<size_t>(round % 17);
    std::vector<std::atomic<int>> hits(n);
    pool.parallel_for(n, [&](size_t i) { hits[i]++; });
    for (size_t i = 0; i < n; ++i) CHECK_EQ(hits[i].load(), 1);
  }
}
