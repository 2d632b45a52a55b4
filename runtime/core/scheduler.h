// Diffusion schedulers for the native denoising loop: DDIM, Euler discrete and
// LCM, reproducing diffusers 0.42.1's DDIMScheduler, EulerDiscreteScheduler
// and LCMScheduler for the same scheduler_config.json and step count.
//
// Numerics follow diffusers' dtypes: float32 tensors computed op by op with
// one rounding each (betas, alphas_cumprod with a double accumulator as
// torch's cumprod, sigmas, every step), float64 where diffusers uses numpy
// (timestep spacing, sigma interpolation, Karras sigmas). sqrt is IEEE's:
// where torch's is too, the loop is bit-identical to diffusers'; x86 torch's
// MKL sqrt is 1 ulp off at times, and stock diffusers agrees to ~3e-6
// relative (tests/python/test_schedulers.py). Timesteps are identical except
// those Euler derives through a log (Karras, exponential, continuous): 1e-4.
//
// The loop, as in a diffusers pipeline:
//   auto s = Scheduler::create(SchedulerKind::kEuler, config_json);
//   s->set_timesteps(25);
//   latents *= s->init_noise_sigma();
//   for (int i = 0; i < s->num_inference_steps(); ++i) {
//     copy latents to x; s->scale_model_input(x, n, i);
//     eps = unet(x, s->timesteps()[i]);
//     s->step(eps, latents, n, i, s->step_needs_noise(i) ? fresh_noise : nullptr);
//   }
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.h"

namespace lorarar {

enum class SchedulerKind { kDdim, kEuler, kLcm };

// "ddim", "euler", "lcm".
const char* scheduler_kind_name(SchedulerKind kind);
// Accepts the short names and diffusers' class names (DDIMScheduler,
// EulerDiscreteScheduler, LCMScheduler), as found in `_class_name`.
bool scheduler_kind_from_name(std::string_view name, SchedulerKind* out);

class Scheduler {
 public:
  virtual ~Scheduler() = default;

  // config_json: a diffusers scheduler_config.json of any scheduler class.
  // Fields `kind` does not use are ignored and fields it lacks take its
  // defaults, as `XScheduler.from_config(config)` does (`_use_default_values`
  // included). Settings the engine does not implement (thresholding,
  // use_beta_sigmas) are refused rather than approximated.
  static Result<std::unique_ptr<Scheduler>> create(SchedulerKind kind, std::string_view config_json);

  SchedulerKind kind() const { return kind_; }
  int64_t num_train_timesteps() const { return static_cast<int64_t>(alphas_cumprod_.size()); }
  // diffusers' scheduler.alphas_cumprod (float32).
  const std::vector<float>& alphas_cumprod() const { return alphas_cumprod_; }

  // Errors where diffusers raises, and also where diffusers would build a
  // broken schedule: repeated timesteps, or the extra timestep -1 numpy's
  // arange gives "trailing" spacing for some step counts (61 of 1000).
  Status set_timesteps(int num_inference_steps);
  // The steps to run: timesteps().size(), 0 before set_timesteps. Euler with
  // log_linear interpolation and continuous v-prediction runs one more
  // than requested, as diffusers does.
  int num_inference_steps() const { return static_cast<int>(timesteps_.size()); }
  // diffusers' scheduler.timesteps, the UNet's timestep input. Integers for
  // DDIM and LCM; float32 values for Euler (e.g. 957.375), hence float.
  const std::vector<float>& timesteps() const { return timesteps_; }
  // Euler: diffusers' scheduler.sigmas (timesteps + 1 values, the last the
  // final sigma). Empty for DDIM and LCM.
  const std::vector<float>& sigmas() const { return sigmas_; }

  // The scale of the initial Gaussian latents (1 for DDIM and LCM).
  float init_noise_sigma() const;

  // DDIM's eta: 0 is deterministic DDIM, 1 adds DDPM's variance (then each
  // step needs noise). The other kinds have no eta and accept only 0.
  Status set_eta(float eta);
  float eta() const { return eta_; }

  // In place, as scheduler.scale_model_input(sample, timesteps[step_index]).
  Status scale_model_input(float* sample, size_t n, int step_index) const;

  // In place: sample <- scheduler.step(model_output, timesteps[step_index],
  // sample).prev_sample. `noise`: n floats of the standard normal noise this
  // step draws where step_needs_noise(step_index), else ignored (may be null).
  // Stateless: steps can be rerun or resumed at any index.
  Status step(const float* model_output, float* sample, size_t n, int step_index, const float* noise) const;

  // LCM: every step but the last; DDIM: every step when eta > 0; Euler: none.
  bool step_needs_noise(int step_index) const;

 protected:
  Scheduler(SchedulerKind kind, std::vector<float> alphas_cumprod)
      : kind_(kind), alphas_cumprod_(std::move(alphas_cumprod)) {}

  virtual Status compute_timesteps(int num_inference_steps) = 0;  // fills timesteps_ (and sigmas_)
  virtual float noise_sigma() const { return 1.0f; }
  virtual void scale(float* sample, size_t n, int step_index) const {}
  virtual bool needs_noise(int step_index) const = 0;
  virtual void step_impl(const float* model_output, float* sample, size_t n, int step_index,
                         const float* noise) const = 0;

  SchedulerKind kind_;
  std::vector<float> alphas_cumprod_;
  std::vector<float> timesteps_;
  std::vector<float> sigmas_;
  float eta_ = 0.0f;

 private:
  Status check_step_args(const void* a, const void* b, size_t n, int step_index) const;
};

}  // namespace lorarar
