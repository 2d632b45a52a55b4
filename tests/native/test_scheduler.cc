#include <algorithm>
#include <array>
#include <cmath>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/random.h"
#include "core/scheduler.h"
#include "harness.h"

using lorarar::Error;
using lorarar::GaussianNoise;
using lorarar::Scheduler;
using lorarar::SchedulerKind;

namespace {

// Stable Diffusion 1.5's scheduler_config.json (a PNDMScheduler config, as shipped).
const char* kSd15 = R"({"_class_name": "PNDMScheduler", "_diffusers_version": "0.6.0", "beta_end": 0.012,
  "beta_schedule": "scaled_linear", "beta_start": 0.00085, "num_train_timesteps": 1000, "set_alpha_to_one": false,
  "skip_prk_steps": true, "steps_offset": 1, "trained_betas": null, "clip_sample": false})";

std::unique_ptr<Scheduler> make(SchedulerKind kind, const std::string& config, int steps) {
  auto s = Scheduler::create(kind, config);
  if (!s.ok()) {
    ::lorarar_test::record_failure(__FILE__, __LINE__, "create: " + s.status().message());
    return nullptr;
  }
  auto status = s.get()->set_timesteps(steps);
  if (!status.is_ok()) ::lorarar_test::record_failure(__FILE__, __LINE__, "set_timesteps: " + status.message());
  return std::move(s).get();
}

// The tiny denoising loop golden.py (below) ran in diffusers: 8 latents,
// model output and noise as simple functions of (step, index).
std::vector<float> run_loop(Scheduler& s) {
  const size_t n = 8;
  std::vector<float> x(n), m(n), noise(n);
  for (size_t j = 0; j < n; ++j) x[j] = (1.0f - 0.25f * j) * s.init_noise_sigma();
  for (int i = 0; i < s.num_inference_steps(); ++i) {
    for (size_t j = 0; j < n; ++j) {
      m[j] = static_cast<float>(0.1 * (j - 3.5) + 0.05 * i);
      noise[j] = static_cast<float>(0.5 - 0.125 * j + 0.01 * i);
    }
    CHECK(s.step(m.data(), x.data(), n, i, noise.data()).is_ok());
  }
  return x;
}

void check_close(const std::vector<float>& got, const std::vector<double>& want, double rtol) {
  CHECK_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size() && i < want.size(); ++i) {
    CHECK_NEAR(got[i], want[i], rtol * std::max(1.0, std::fabs(want[i])));
  }
}

}  // namespace

// Goldens: diffusers 0.42.1 (DDIMScheduler / EulerDiscreteScheduler /
// LCMScheduler.from_config of the config, set_timesteps, the loop of
// run_loop with `eta=0.5, variance_noise=noise` for DDIM-eta and
// scheduling_lcm.randn_tensor returning the noise for LCM), with torch's
// float32 sqrt made correctly rounded (x.double().sqrt().float(): the MKL
// build's differs by 1 ulp at times), printed as repr(float(value)). On
// x86-64 the engine reproduces them bit for bit; the tolerance leaves room
// for another libm's pow/cos.

TEST(scheduler_ddim_matches_diffusers_goldens) {
  auto s = make(SchedulerKind::kDdim, kSd15, 4);
  if (!s) return;
  CHECK(s->timesteps() == std::vector<float>({751, 501, 251, 1}));
  CHECK_NEAR(s->alphas_cumprod()[0], 0.9991499781608582, 1e-7);
  CHECK_NEAR(s->alphas_cumprod()[999], 0.00466009508818388, 1e-9);
  CHECK_EQ(s->init_noise_sigma(), 1.0f);
  CHECK(!s->step_needs_noise(0));
  check_close(run_loop(*s),
              {5.550894260406494, 4.0836615562438965, 2.616429090499878, 1.1491961479187012, -0.3180365264415741,
               -1.7852691411972046, -3.252502202987671, -4.719735622406006},
              1e-6);
}

TEST(scheduler_ddim_eta_uses_the_given_noise) {
  auto s = make(SchedulerKind::kDdim, std::string(kSd15).insert(1, R"("prediction_type": "v_prediction", )"), 3);
  if (!s) return;
  CHECK(s->set_eta(0.5f).is_ok());
  CHECK(s->step_needs_noise(0));
  CHECK(s->timesteps() == std::vector<float>({667, 334, 1}));
  check_close(run_loop(*s),
              {1.0765464305877686, 0.7858962416648865, 0.49524614214897156, 0.20459607243537903, -0.08605398237705231,
               -0.3767040967941284, -0.667354166507721, -0.9580041766166687},
              1e-6);
}

TEST(scheduler_euler_matches_diffusers_goldens) {
  auto s = make(SchedulerKind::kEuler, kSd15, 4);
  if (!s) return;
  // The config names no timestep_spacing: Euler's default, linspace, applies.
  check_close(s->timesteps(), {999, 666, 333, 0}, 0);
  check_close(s->sigmas(), {14.614646911621094, 2.9183084964752197, 0.9323583245277405, 0.029167532920837402, 0.0},
              3e-7);
  CHECK_NEAR(s->init_noise_sigma(), 14.614646911621094, 1e-5);
  const float sigma = s->init_noise_sigma();
  std::vector<float> x = {1.0f * sigma, 0.75f * sigma, 0.5f * sigma};
  CHECK(s->scale_model_input(x.data(), x.size(), 0).is_ok());
  check_close(x, {0.9976672530174255, 0.748250424861908, 0.49883362650871277}, 3e-7);
  check_close(run_loop(*s),
              {19.53577995300293, 14.420654296875, 9.30552864074707, 4.190402030944824, -0.9247241020202637,
               -6.03985071182251, -11.154976844787598, -16.270103454589844},
              1e-6);
}

TEST(scheduler_euler_zero_snr_v_prediction) {
  auto s = make(
      SchedulerKind::kEuler,
      std::string(kSd15).insert(
          1, R"("prediction_type": "v_prediction", "rescale_betas_zero_snr": true, "timestep_spacing": "trailing", )"),
      3);
  if (!s) return;
  check_close(s->timesteps(), {999, 666, 332}, 0);
  CHECK_NEAR(s->alphas_cumprod()[999], 5.960464477539063e-08, 0);  // pinned to 2^-24, as diffusers does
  check_close(s->sigmas(), {4095.999755859375, 3.5009353160858154, 0.9834383130073547, 0.0}, 3e-7);
  CHECK_NEAR(s->init_noise_sigma(), 4095.999755859375, 1e-3);
  check_close(run_loop(*s),
              {0.9368657469749451, 0.6654255986213684, 0.3940063714981079, 0.12257668375968933, -0.1488373875617981,
               -0.42026185989379883, -0.6916706562042236, -0.9630899429321289},
              1e-5);
}

TEST(scheduler_lcm_matches_diffusers_goldens) {
  auto s = make(SchedulerKind::kLcm, std::string(kSd15).insert(1, R"("original_inference_steps": 50, )"), 4);
  if (!s) return;
  check_close(s->timesteps(), {999, 759, 499, 259}, 0);
  CHECK(s->step_needs_noise(0) && s->step_needs_noise(2) && !s->step_needs_noise(3));
  check_close(run_loop(*s),
              {24.916141510009766, 18.309085845947266, 11.702030181884766, 5.094974994659424, -1.5120806694030762,
               -8.119135856628418, -14.726191520690918, -21.333248138427734},
              1e-6);
}

TEST(scheduler_spacings_and_defaults) {
  // DDIM's defaults: linear betas 1e-4..0.02, leading, no offset.
  auto d = make(SchedulerKind::kDdim, "{}", 10);
  if (d) {
    check_close(d->timesteps(), {900, 800, 700, 600, 500, 400, 300, 200, 100, 0}, 0);
    CHECK_NEAR(d->alphas_cumprod()[0], 0.9999, 1e-7);
  }
  // Euler's default spacing is linspace, with fractional timesteps.
  auto e = make(SchedulerKind::kEuler, "{}", 5);
  if (e) check_close(e->timesteps(), {999, 749.25, 499.5, 249.75, 0}, 0);
  auto t = make(SchedulerKind::kDdim, R"({"timestep_spacing": "trailing"})", 4);
  if (t) check_close(t->timesteps(), {999, 749, 499, 249}, 0);
  auto l = make(SchedulerKind::kDdim, R"({"timestep_spacing": "linspace"})", 4);
  if (l) check_close(l->timesteps(), {999, 666, 333, 0}, 0);
  // Fields listed in _use_default_values take the class default; others'
  // fields are ignored; null booleans are false.
  auto u = make(SchedulerKind::kDdim,
                R"({"beta_schedule": "scaled_linear", "_use_default_values": ["beta_schedule"],
                    "use_karras_sigmas": true, "set_alpha_to_one": null})",
                2);
  if (u) CHECK_NEAR(u->alphas_cumprod()[0], 0.9999, 1e-7);
  SchedulerKind k;
  CHECK(lorarar::scheduler_kind_from_name("EulerDiscreteScheduler", &k) && k == SchedulerKind::kEuler);
  CHECK(lorarar::scheduler_kind_from_name("lcm", &k) && k == SchedulerKind::kLcm);
  CHECK(!lorarar::scheduler_kind_from_name("PNDMScheduler", &k));
}

TEST(scheduler_euler_karras_log_linear_continuous) {
  auto k = make(SchedulerKind::kEuler, R"({"use_karras_sigmas": true, "final_sigmas_type": "sigma_min"})", 6);
  if (k) {
    CHECK_EQ(k->sigmas().size(), size_t(7));
    CHECK(k->sigmas().back() > 0.0f);
    CHECK_NEAR(k->sigmas().front(), k->init_noise_sigma(), 0);
  }
  // log_linear keeps n + 1 interpolated sigmas before the final one, so
  // continuous v-prediction runs one step more than asked, as diffusers does.
  auto c = make(
      SchedulerKind::kEuler,
      R"({"interpolation_type": "log_linear", "prediction_type": "v_prediction", "timestep_type": "continuous"})", 4);
  if (c) {
    CHECK_EQ(c->num_inference_steps(), 5);
    CHECK_NEAR(c->timesteps()[0], 0.25 * std::log(c->sigmas()[0]), 1e-6);
  }
}

TEST(scheduler_config_errors) {
  CHECK_ERROR(Scheduler::create(SchedulerKind::kDdim, "[1]"), Error::kInvalidFile,
              "a scheduler config must be a JSON object");
  CHECK_EQ(static_cast<int>(Scheduler::create(SchedulerKind::kDdim, "{").status().code()),
           static_cast<int>(Error::kInvalidFile));
  CHECK_ERROR(Scheduler::create(SchedulerKind::kDdim, R"({"beta_schedule": "cosine"})"), Error::kInvalidFile,
              "unknown beta_schedule \"cosine\" (linear, scaled_linear, squaredcos_cap_v2)");
  CHECK_ERROR(Scheduler::create(SchedulerKind::kEuler, R"({"timestep_spacing": "even"})"), Error::kInvalidFile,
              "unknown timestep_spacing \"even\" (leading, trailing, linspace)");
  CHECK_ERROR(Scheduler::create(SchedulerKind::kLcm, R"({"prediction_type": "flow"})"), Error::kInvalidFile,
              "unknown prediction_type \"flow\" (epsilon, v_prediction, sample)");
  CHECK_ERROR(Scheduler::create(SchedulerKind::kDdim, R"({"num_train_timesteps": 1000.5})"), Error::kInvalidFile,
              "\"num_train_timesteps\" must be an integer");
  CHECK_ERROR(Scheduler::create(SchedulerKind::kDdim, R"({"num_train_timesteps": 1})"), Error::kInvalidFile,
              "\"num_train_timesteps\" must be in [2, 16777216], got 1");
  CHECK_ERROR(Scheduler::create(SchedulerKind::kEuler, R"({"beta_start": "0.1"})"), Error::kInvalidFile,
              "\"beta_start\" must be a number");
  CHECK_ERROR(Scheduler::create(SchedulerKind::kDdim, R"({"clip_sample": 1})"), Error::kInvalidFile,
              "\"clip_sample\" must be true or false");
  CHECK_ERROR(Scheduler::create(SchedulerKind::kDdim, R"({"beta_schedule": null})"), Error::kInvalidFile,
              "\"beta_schedule\" must be a string");
  CHECK_ERROR(Scheduler::create(SchedulerKind::kDdim, R"({"trained_betas": [0.1, 0.2]})"), Error::kInvalidFile,
              "trained_betas has 2 values for num_train_timesteps 1000");
  CHECK_ERROR(Scheduler::create(SchedulerKind::kDdim, R"({"beta_end": 1.5})"), Error::kInvalidFile,
              "betas must lie in [0, 1): beta 666 is 1.000033");
  CHECK_ERROR(Scheduler::create(SchedulerKind::kDdim, R"({"thresholding": true})"), Error::kUnsupported,
              "thresholding (dynamic thresholding of the predicted sample) is not supported; latent diffusion "
              "models do not use it");
  CHECK_ERROR(Scheduler::create(SchedulerKind::kEuler, R"({"use_beta_sigmas": true})"), Error::kUnsupported,
              "use_beta_sigmas is not supported (karras and exponential are)");
  CHECK_ERROR(
      Scheduler::create(SchedulerKind::kEuler, R"({"use_karras_sigmas": true, "use_exponential_sigmas": true})"),
      Error::kInvalidFile, "only one of use_karras_sigmas, use_exponential_sigmas and use_beta_sigmas can be true");
  CHECK_ERROR(Scheduler::create(SchedulerKind::kLcm, R"({"original_inference_steps": 2000})"), Error::kInvalidFile,
              "\"original_inference_steps\" must be in [1, 1000], got 2000");
  // Thresholding is DDIM's and LCM's setting; Euler ignores it as diffusers does.
  CHECK(Scheduler::create(SchedulerKind::kEuler, R"({"thresholding": true})").ok());
}

TEST(scheduler_timestep_and_step_errors) {
  auto d = Scheduler::create(SchedulerKind::kDdim, kSd15);
  CHECK(d.ok());
  if (!d.ok()) return;
  Scheduler& s = *d.get();
  float x[2] = {0, 0}, m[2] = {0, 0};
  CHECK_ERROR(s.step(m, x, 2, 0, nullptr), Error::kInvalidArgument, "set_timesteps has not been called");
  CHECK_ERROR(s.set_timesteps(0), Error::kInvalidArgument, "num_inference_steps must be at least 1, got 0");
  CHECK_ERROR(s.set_timesteps(1001), Error::kInvalidArgument,
              "num_inference_steps 1001 is larger than num_train_timesteps 1000");
  CHECK_ERROR(s.set_timesteps(1000), Error::kInvalidArgument, "steps_offset 1 puts timestep 1000 outside [0, 1000)");
  CHECK_EQ(s.num_inference_steps(), 0);
  CHECK(s.set_timesteps(10).is_ok());
  CHECK_ERROR(s.step(m, x, 2, 10, nullptr), Error::kInvalidArgument, "step index 10 is outside [0, 10)");
  CHECK_ERROR(s.scale_model_input(x, 2, -1), Error::kInvalidArgument, "step index -1 is outside [0, 10)");
  CHECK_ERROR(s.set_eta(-1.0f), Error::kInvalidArgument, "eta must be a finite number >= 0, got -1.000000");
  CHECK(s.set_eta(1.0f).is_ok());
  CHECK_ERROR(s.step(m, x, 2, 0, nullptr), Error::kInvalidArgument, "ddim step 0 needs noise");

  auto t = Scheduler::create(SchedulerKind::kDdim, R"({"timestep_spacing": "trailing"})");
  CHECK(t.ok());
  if (t.ok()) {
    CHECK_ERROR(t.get()->set_timesteps(61), Error::kInvalidArgument,
                "\"trailing\" spacing of 1000 timesteps gives 62 timesteps for 61 steps in diffusers (the last is "
                "-1); choose another step count");
  }
  auto e = Scheduler::create(SchedulerKind::kEuler, kSd15);
  CHECK(e.ok());
  if (e.ok()) {
    CHECK_ERROR(e.get()->set_eta(0.5f), Error::kInvalidArgument, "eta applies to DDIM only, not to euler");
    CHECK(e.get()->set_eta(0.0f).is_ok());
    CHECK_EQ(e.get()->init_noise_sigma(), 0.0f);  // no sigmas before set_timesteps
  }
  auto l = Scheduler::create(SchedulerKind::kLcm, "{}");
  CHECK(l.ok());
  if (l.ok()) {
    CHECK_ERROR(l.get()->set_timesteps(51), Error::kInvalidArgument,
                "num_inference_steps 51 is larger than original_inference_steps 50");
    CHECK(l.get()->set_timesteps(2).is_ok());
    CHECK_ERROR(l.get()->step(m, x, 2, 0, nullptr), Error::kInvalidArgument, "lcm step 0 needs noise");
    CHECK(l.get()->step(m, x, 2, 1, nullptr).is_ok());  // the last step draws none
  }
}

// ------------------------------------------------------------------ random

TEST(philox_known_answers) {
  // Random123's known-answer vectors for philox4x32_10.
  using A4 = std::array<uint32_t, 4>;
  CHECK(lorarar::philox4x32_10({0, 0, 0, 0}, {0, 0}) == A4({0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}));
  CHECK(lorarar::philox4x32_10({~0u, ~0u, ~0u, ~0u}, {~0u, ~0u}) ==
        A4({0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}));
  CHECK(lorarar::philox4x32_10({0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}, {0xa4093822u, 0x299f31d0u}) ==
        A4({0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}));
}

TEST(gaussian_noise_is_pinned_and_seekable) {
  // The stream is part of the engine's contract (random.h): these values,
  // bit for bit, on every platform (the aarch64 build checks them under qemu).
  GaussianNoise g(0);
  float v[8];
  g.fill(v, 8);
  const float want[8] = {0.99113770f,  -0.92466259f, -0.61760896f, -0.48206860f,
                         -0.15363823f, 0.18082590f,  0.83173513f,  0.19743972f};
  for (int i = 0; i < 8; ++i) CHECK_EQ(v[i], want[i]);
  CHECK_EQ(g.offset(), uint64_t(8));
  // Any split of the stream gives the same values.
  GaussianNoise h(0);
  float a[3], b[5];
  h.fill(a, 3);
  h.fill(b, 5);
  for (int i = 0; i < 3; ++i) CHECK_EQ(a[i], want[i]);
  for (int i = 0; i < 5; ++i) CHECK_EQ(b[i], want[3 + i]);
  CHECK_EQ(GaussianNoise::at(0, 6), want[6]);
  GaussianNoise k(0, 5);
  k.fill(a, 1);
  CHECK_EQ(a[0], want[5]);
  CHECK(GaussianNoise::at(1, 0) != want[0]);
  CHECK(GaussianNoise::at(uint64_t(1) << 32, 0) != GaussianNoise::at(0, 0));  // the seed's high word counts
}

TEST(gaussian_noise_statistics) {
  const size_t n = 1 << 20;
  std::vector<float> v(n);
  GaussianNoise(12345).fill(v.data(), n);
  double sum = 0, sum2 = 0, sum4 = 0;
  size_t within1 = 0, beyond3 = 0;
  for (float x : v) {
    CHECK(std::isfinite(x));
    sum += x;
    sum2 += double(x) * x;
    sum4 += double(x) * x * x * x;
    within1 += std::fabs(x) < 1.0f;
    beyond3 += std::fabs(x) > 3.0f;
  }
  const double mean = sum / n, var = sum2 / n - mean * mean;
  CHECK_NEAR(mean, 0.0, 0.005);     // 5 standard errors
  CHECK_NEAR(var, 1.0, 0.007);      // ~5 standard errors (sd of var ~ sqrt(2/n))
  CHECK_NEAR(sum4 / n, 3.0, 0.03);  // kurtosis
  CHECK_NEAR(double(within1) / n, 0.682689, 0.0025);
  CHECK_NEAR(double(beyond3) / n, 0.0026998, 0.0003);
  // Neighbouring values are uncorrelated.
  double lag = 0;
  for (size_t i = 1; i < n; ++i) lag += double(v[i]) * v[i - 1];
  CHECK_NEAR(lag / n, 0.0, 0.005);
}
