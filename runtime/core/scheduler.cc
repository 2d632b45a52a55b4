// Compiled with -ffp-contract=off (runtime/CMakeLists.txt): torch and numpy
// round after every operation here, so a contracted a * b + c would drift
// from diffusers. Where torch itself fuses (linspace), std::fma says so.
#include "core/scheduler.h"

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "core/json.h"

namespace lorarar {

namespace {

// ------------------------------------------------------------------ config

enum class Prediction { kEpsilon, kSample, kVPrediction };
enum class Spacing { kLeading, kTrailing, kLinspace };

struct Config {
  int64_t num_train_timesteps = 1000;
  double beta_start = 0.0001;
  double beta_end = 0.02;
  std::string beta_schedule = "linear";
  std::optional<std::vector<double>> trained_betas;
  Prediction prediction = Prediction::kEpsilon;
  Spacing spacing = Spacing::kLeading;
  int64_t steps_offset = 0;
  bool rescale_betas_zero_snr = false;
  // DDIM and LCM.
  bool clip_sample = true;
  double clip_sample_range = 1.0;
  bool set_alpha_to_one = true;
  // Euler.
  bool log_linear = false;  // interpolation_type
  bool karras = false;
  bool exponential = false;
  std::optional<double> sigma_min, sigma_max;
  bool continuous = false;       // timestep_type
  bool final_sigma_min = false;  // final_sigmas_type
  // LCM.
  int64_t original_inference_steps = 50;
  double timestep_scaling = 10.0;
};

// diffusers' __init__ defaults per class.
Config defaults(SchedulerKind kind) {
  Config c;
  if (kind == SchedulerKind::kEuler) c.spacing = Spacing::kLinspace;
  if (kind == SchedulerKind::kLcm) {
    c.beta_start = 0.00085;
    c.beta_end = 0.012;
    c.beta_schedule = "scaled_linear";
    c.clip_sample = false;
  }
  return c;
}

Status config_error(std::string message) { return Status(Error::kInvalidFile, std::move(message)); }

// Reads the keys of a config object that this scheduler uses.
class ConfigReader {
 public:
  explicit ConfigReader(const json::Value& obj) : obj_(obj) {}

  Status init() {
    if (const json::Value* d = obj_.find("_use_default_values")) {
      if (!d->is_array()) return config_error("\"_use_default_values\" must be an array of names");
      for (const auto& k : d->as_array()) {
        if (!k.is_string()) return config_error("\"_use_default_values\" must be an array of names");
        use_defaults_.insert(k.as_string());
      }
    }
    return Status::ok();
  }

  // nullptr where absent or listed in _use_default_values: the default stands.
  // A null is read as diffusers reads None: false for booleans, the default
  // for the optional settings, an error elsewhere.
  const json::Value* get(const char* key) const { return use_defaults_.count(key) ? nullptr : obj_.find(key); }

  Status read(const char* key, bool* out) const {
    const json::Value* v = get(key);
    if (!v) return Status::ok();
    if (!v->is_bool() && !v->is_null()) return config_error(quoted(key) + " must be true or false");
    *out = v->is_bool() && v->as_bool();
    return Status::ok();
  }

  Status read(const char* key, int64_t* out, int64_t lo, int64_t hi) const {
    const json::Value* v = get(key);
    if (!v) return Status::ok();
    if (!v->is_integer()) return config_error(quoted(key) + " must be an integer");
    if (v->as_int() < lo || v->as_int() > hi) {
      return config_error(quoted(key) + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " +
                          std::to_string(v->as_int()));
    }
    *out = v->as_int();
    return Status::ok();
  }

  Status read(const char* key, double* out) const {
    const json::Value* v = get(key);
    if (!v) return Status::ok();
    if (!v->is_number() || !std::isfinite(v->as_double())) return config_error(quoted(key) + " must be a number");
    *out = v->as_double();
    return Status::ok();
  }

  Status read(const char* key, std::optional<double>* out) const {
    double d = 0;
    if (!get(key) || get(key)->is_null()) return Status::ok();
    LORARAR_RETURN_IF_ERROR(read(key, &d));
    *out = d;
    return Status::ok();
  }

  Status read(const char* key, std::string* out) const {
    const json::Value* v = get(key);
    if (!v) return Status::ok();
    if (!v->is_string()) return config_error(quoted(key) + " must be a string");
    *out = v->as_string();
    return Status::ok();
  }

  // A string setting with a fixed set of values.
  template <typename T>
  Status read_choice(const char* key, T* out, std::initializer_list<std::pair<const char*, T>> choices) const {
    std::string s;
    if (!get(key)) return Status::ok();
    LORARAR_RETURN_IF_ERROR(read(key, &s));
    std::string names;
    for (const auto& [name, value] : choices) {
      if (s == name) {
        *out = value;
        return Status::ok();
      }
      names += (names.empty() ? "" : ", ") + std::string(name);
    }
    return config_error("unknown " + std::string(key) + " " + json::quote(s) + " (" + names + ")");
  }

  Status read_betas(std::optional<std::vector<double>>* out) const {
    const json::Value* v = get("trained_betas");
    if (!v || v->is_null()) return Status::ok();
    if (!v->is_array()) return config_error("\"trained_betas\" must be an array of numbers");
    std::vector<double> betas;
    for (const auto& b : v->as_array()) {
      if (!b.is_number()) return config_error("\"trained_betas\" must be an array of numbers");
      betas.push_back(b.as_double());
    }
    *out = std::move(betas);
    return Status::ok();
  }

 private:
  static std::string quoted(const char* key) { return json::quote(key); }

  const json::Value& obj_;
  std::set<std::string, std::less<>> use_defaults_;
};

Result<Config> parse_config(SchedulerKind kind, std::string_view text) {
  auto parsed = json::parse(text);
  if (!parsed.ok()) return parsed.status();
  const json::Value& obj = parsed.get();
  if (!obj.is_object()) return config_error("a scheduler config must be a JSON object");
  ConfigReader r(obj);
  LORARAR_RETURN_IF_ERROR(r.init());
  Config c = defaults(kind);
  const bool ddim = kind == SchedulerKind::kDdim, euler = kind == SchedulerKind::kEuler,
             lcm = kind == SchedulerKind::kLcm;

  // 2^24: every timestep stays exact as a float.
  LORARAR_RETURN_IF_ERROR(r.read("num_train_timesteps", &c.num_train_timesteps, 2, int64_t(1) << 24));
  LORARAR_RETURN_IF_ERROR(r.read("beta_start", &c.beta_start));
  LORARAR_RETURN_IF_ERROR(r.read("beta_end", &c.beta_end));
  LORARAR_RETURN_IF_ERROR(r.read("beta_schedule", &c.beta_schedule));
  LORARAR_RETURN_IF_ERROR(r.read_betas(&c.trained_betas));
  if (!c.trained_betas && c.beta_schedule != "linear" && c.beta_schedule != "scaled_linear" &&
      c.beta_schedule != "squaredcos_cap_v2") {
    return config_error("unknown beta_schedule " + json::quote(c.beta_schedule) +
                        " (linear, scaled_linear, squaredcos_cap_v2)");
  }
  if (c.trained_betas && static_cast<int64_t>(c.trained_betas->size()) != c.num_train_timesteps) {
    return config_error("trained_betas has " + std::to_string(c.trained_betas->size()) +
                        " values for num_train_timesteps " + std::to_string(c.num_train_timesteps));
  }
  if (euler) {
    // diffusers' Euler also takes "original_sample" for "sample".
    LORARAR_RETURN_IF_ERROR(r.read_choice("prediction_type", &c.prediction,
                                          {{"epsilon", Prediction::kEpsilon},
                                           {"v_prediction", Prediction::kVPrediction},
                                           {"sample", Prediction::kSample},
                                           {"original_sample", Prediction::kSample}}));
  } else {
    LORARAR_RETURN_IF_ERROR(r.read_choice("prediction_type", &c.prediction,
                                          {{"epsilon", Prediction::kEpsilon},
                                           {"v_prediction", Prediction::kVPrediction},
                                           {"sample", Prediction::kSample}}));
  }
  if (!lcm) {  // LCM's schedule ignores timestep_spacing and steps_offset
    LORARAR_RETURN_IF_ERROR(r.read_choice(
        "timestep_spacing", &c.spacing,
        {{"leading", Spacing::kLeading}, {"trailing", Spacing::kTrailing}, {"linspace", Spacing::kLinspace}}));
    LORARAR_RETURN_IF_ERROR(r.read("steps_offset", &c.steps_offset, -c.num_train_timesteps, c.num_train_timesteps));
  }
  LORARAR_RETURN_IF_ERROR(r.read("rescale_betas_zero_snr", &c.rescale_betas_zero_snr));

  if (ddim || lcm) {
    LORARAR_RETURN_IF_ERROR(r.read("clip_sample", &c.clip_sample));
    LORARAR_RETURN_IF_ERROR(r.read("clip_sample_range", &c.clip_sample_range));
    LORARAR_RETURN_IF_ERROR(r.read("set_alpha_to_one", &c.set_alpha_to_one));
    bool thresholding = false;
    LORARAR_RETURN_IF_ERROR(r.read("thresholding", &thresholding));
    if (thresholding) {
      return Status(Error::kUnsupported,
                    "thresholding (dynamic thresholding of the predicted sample) is not supported; "
                    "latent diffusion models do not use it");
    }
  }
  if (euler) {
    LORARAR_RETURN_IF_ERROR(
        r.read_choice("interpolation_type", &c.log_linear, {{"linear", false}, {"log_linear", true}}));
    bool beta_sigmas = false;
    LORARAR_RETURN_IF_ERROR(r.read("use_karras_sigmas", &c.karras));
    LORARAR_RETURN_IF_ERROR(r.read("use_exponential_sigmas", &c.exponential));
    LORARAR_RETURN_IF_ERROR(r.read("use_beta_sigmas", &beta_sigmas));
    if (int(c.karras) + int(c.exponential) + int(beta_sigmas) > 1) {
      return config_error("only one of use_karras_sigmas, use_exponential_sigmas and use_beta_sigmas can be true");
    }
    if (beta_sigmas)
      return Status(Error::kUnsupported, "use_beta_sigmas is not supported (karras and exponential are)");
    LORARAR_RETURN_IF_ERROR(r.read("sigma_min", &c.sigma_min));
    LORARAR_RETURN_IF_ERROR(r.read("sigma_max", &c.sigma_max));
    LORARAR_RETURN_IF_ERROR(r.read_choice("timestep_type", &c.continuous, {{"discrete", false}, {"continuous", true}}));
    LORARAR_RETURN_IF_ERROR(
        r.read_choice("final_sigmas_type", &c.final_sigma_min, {{"zero", false}, {"sigma_min", true}}));
  }
  if (lcm) {
    LORARAR_RETURN_IF_ERROR(r.read("original_inference_steps", &c.original_inference_steps, 1, c.num_train_timesteps));
    LORARAR_RETURN_IF_ERROR(r.read("timestep_scaling", &c.timestep_scaling));
  }
  return c;
}

// ------------------------------------------------------------------ the training schedule

// torch.linspace(start, end, steps, dtype=torch.float32) on CPU: start + i *
// step for the first half, end - (steps - 1 - i) * step for the rest, in
// float. torch's AVX2/AVX-512 (and ARM) builds compile that as one fused
// multiply-add.
std::vector<float> torch_linspace_f32(double start, double end, int64_t steps) {
  const float s = static_cast<float>(start), e = static_cast<float>(end);
  std::vector<float> out(static_cast<size_t>(steps), s);
  if (steps < 2) return out;
  const float step = (e - s) / static_cast<float>(steps - 1);
  const int64_t halfway = steps / 2;
  for (int64_t i = 0; i < steps; ++i) {
    out[static_cast<size_t>(i)] =
        i < halfway ? std::fma(step, static_cast<float>(i), s) : std::fma(-step, static_cast<float>(steps - 1 - i), e);
  }
  return out;
}

Result<std::vector<float>> make_betas(const Config& c) {
  const int64_t n = c.num_train_timesteps;
  std::vector<float> betas;
  if (c.trained_betas) {
    for (double b : *c.trained_betas) betas.push_back(static_cast<float>(b));
  } else if (c.beta_schedule == "linear") {
    betas = torch_linspace_f32(c.beta_start, c.beta_end, n);
  } else if (c.beta_schedule == "scaled_linear") {
    // Python's beta ** 0.5 is pow(), then torch squares in float32.
    betas = torch_linspace_f32(std::pow(c.beta_start, 0.5), std::pow(c.beta_end, 0.5), n);
    for (float& b : betas) b = b * b;
  } else {  // squaredcos_cap_v2: betas_for_alpha_bar, in Python floats
    const double pi = 3.141592653589793;
    auto alpha_bar = [pi](double t) { return std::pow(std::cos((t + 0.008) / 1.008 * pi / 2), 2.0); };
    for (int64_t i = 0; i < n; ++i) {
      const double t1 = static_cast<double>(i) / n, t2 = static_cast<double>(i + 1) / n;
      betas.push_back(static_cast<float>(std::min(1 - alpha_bar(t2) / alpha_bar(t1), 0.999)));
    }
  }
  for (size_t i = 0; i < betas.size(); ++i) {
    if (!(betas[i] >= 0.0f && betas[i] < 1.0f)) {
      return config_error("betas must lie in [0, 1): beta " + std::to_string(i) + " is " + std::to_string(betas[i]));
    }
  }
  return betas;
}

// torch.cumprod on CPU accumulates float32 in double.
std::vector<float> cumprod(const std::vector<float>& x) {
  std::vector<float> out(x.size());
  double acc = 1.0;
  for (size_t i = 0; i < x.size(); ++i) {
    acc *= x[i];
    out[i] = static_cast<float>(acc);
  }
  return out;
}

// rescale_zero_terminal_snr (arXiv:2305.08891, Algorithm 1), float32 as in diffusers.
std::vector<float> rescale_zero_terminal_snr(const std::vector<float>& betas) {
  std::vector<float> alphas(betas.size());
  for (size_t i = 0; i < betas.size(); ++i) alphas[i] = 1.0f - betas[i];
  std::vector<float> bar_sqrt = cumprod(alphas);
  for (float& a : bar_sqrt) a = std::sqrt(a);
  const float first = bar_sqrt.front(), last = bar_sqrt.back();
  const float factor = first / (first - last);
  for (float& a : bar_sqrt) a = (a - last) * factor;
  std::vector<float> bar(bar_sqrt.size());
  for (size_t i = 0; i < bar.size(); ++i) bar[i] = bar_sqrt[i] * bar_sqrt[i];
  std::vector<float> out(betas.size());
  out[0] = 1.0f - bar[0];
  for (size_t i = 1; i < bar.size(); ++i) out[i] = 1.0f - bar[i] / bar[i - 1];
  return out;
}

Result<std::vector<float>> make_alphas_cumprod(const Config& c) {
  LORARAR_ASSIGN_OR_RETURN(std::vector<float> betas, make_betas(c));
  if (c.rescale_betas_zero_snr) betas = rescale_zero_terminal_snr(betas);
  std::vector<float> alphas(betas.size());
  for (size_t i = 0; i < betas.size(); ++i) alphas[i] = 1.0f - betas[i];
  return cumprod(alphas);
}

// ------------------------------------------------------------------ timestep spacing (numpy, float64)

// np.linspace(0, stop, num, endpoint): i * step, the endpoint set exactly.
std::vector<double> np_linspace(double start, double stop, int64_t num, bool endpoint = true) {
  std::vector<double> y(static_cast<size_t>(num));
  const int64_t div = endpoint ? num - 1 : num;
  const double delta = stop - start;
  for (int64_t i = 0; i < num; ++i) {
    // div == 0 (one point): diffusers' y * delta with y = 0.
    y[static_cast<size_t>(i)] = (div > 0 ? static_cast<double>(i) * (delta / div) : 0.0 * delta) + start;
  }
  if (endpoint && num > 1) y.back() = stop;
  return y;
}

// np.arange(start, 0, -step) for an integer start and a float step: numpy
// takes the length from ceil(-start / -step) and fills start + i * (second - start).
std::vector<double> np_arange_down(int64_t start, double step) {
  const double len = std::ceil((0.0 - static_cast<double>(start)) / -step);
  std::vector<double> y;
  if (!(len > 0)) return y;
  y.resize(static_cast<size_t>(len));
  const double first = static_cast<double>(start);
  y[0] = first;
  if (y.size() > 1) {
    const double second = first + -step;
    y[1] = second;
    const double delta = second - first;
    for (size_t i = 2; i < y.size(); ++i) y[i] = first + static_cast<double>(i) * delta;
  }
  return y;
}

// The spacing shared by DDIM and Euler, in float64 before rounding or the
// float32 cast: leading and trailing give integers, linspace fractions.
Result<std::vector<double>> spaced_timesteps(Spacing spacing, int64_t train, int64_t n, int64_t offset) {
  std::vector<double> t;
  if (spacing == Spacing::kLinspace) {
    t = np_linspace(0.0, static_cast<double>(train - 1), n);
    std::reverse(t.begin(), t.end());
  } else if (spacing == Spacing::kLeading) {
    const int64_t ratio = train / n;
    for (int64_t i = n - 1; i >= 0; --i) t.push_back(static_cast<double>(i * ratio + offset));
  } else {
    t = np_arange_down(train, static_cast<double>(train) / n);
    for (double& v : t) v = std::nearbyint(v) - 1;  // np.round: half to even
    if (static_cast<int64_t>(t.size()) != n) {
      // numpy's arange overshoots for these counts; diffusers then runs an
      // extra step at timestep -1, which indexes alphas_cumprod[-1] (DDIM).
      return Status(Error::kInvalidArgument, "\"trailing\" spacing of " + std::to_string(train) + " timesteps gives " +
                                                 std::to_string(t.size()) + " timesteps for " + std::to_string(n) +
                                                 " steps in diffusers (the last is -1); choose another step count");
    }
  }
  return t;
}

Status check_decreasing(const std::vector<float>& t, int n) {
  for (size_t i = 1; i < t.size(); ++i) {
    if (!(t[i] < t[i - 1])) {
      return Status(Error::kInvalidArgument,
                    std::to_string(n) + " steps give repeated timesteps (" + std::to_string(t[i]) + ")");
    }
  }
  return Status::ok();
}

Status check_steps(int n) {
  if (n < 1) return Status(Error::kInvalidArgument, "num_inference_steps must be at least 1, got " + std::to_string(n));
  return Status::ok();
}

Status too_many_steps(int n, int64_t train) {
  return Status(Error::kInvalidArgument, "num_inference_steps " + std::to_string(n) +
                                             " is larger than num_train_timesteps " + std::to_string(train));
}

// torch's clamp: NaN stays NaN.
inline float clamp(float x, float lo, float hi) { return std::isnan(x) ? x : std::min(std::max(x, lo), hi); }

// ------------------------------------------------------------------ DDIM

class DdimScheduler final : public Scheduler {
 public:
  DdimScheduler(const Config& c, std::vector<float> ac) : Scheduler(SchedulerKind::kDdim, std::move(ac)), c_(c) {
    final_alpha_cumprod_ = c.set_alpha_to_one ? 1.0f : alphas_cumprod_.front();
  }

 protected:
  Status compute_timesteps(int n) override {
    const int64_t train = num_train_timesteps();
    if (n > train) return too_many_steps(n, train);
    LORARAR_ASSIGN_OR_RETURN(std::vector<double> t, spaced_timesteps(c_.spacing, train, n, c_.steps_offset));
    int_timesteps_.clear();
    for (double v : t) {
      const int64_t ti = static_cast<int64_t>(std::nearbyint(v));
      if (ti < 0 || ti >= train) {
        return Status(Error::kInvalidArgument, "steps_offset " + std::to_string(c_.steps_offset) + " puts timestep " +
                                                   std::to_string(ti) + " outside [0, " + std::to_string(train) + ")");
      }
      int_timesteps_.push_back(ti);
    }
    timesteps_.assign(int_timesteps_.begin(), int_timesteps_.end());
    step_ratio_ = train / n;
    return check_decreasing(timesteps_, n);
  }

  bool needs_noise(int) const override { return eta_ > 0.0f; }

  void step_impl(const float* model_output, float* sample, size_t n, int i, const float* noise) const override {
    const int64_t t = int_timesteps_[static_cast<size_t>(i)];
    // diffusers' previous timestep, t - train / n, whatever the spacing.
    const int64_t prev_t = t - step_ratio_;
    const float a_t = alphas_cumprod_[static_cast<size_t>(t)];
    const float a_prev = prev_t >= 0 ? alphas_cumprod_[static_cast<size_t>(prev_t)] : final_alpha_cumprod_;
    const float b_t = 1.0f - a_t;
    const float sqrt_a = std::sqrt(a_t), sqrt_b = std::sqrt(b_t);
    const float b_prev = 1.0f - a_prev;
    const float variance = (b_prev / b_t) * (1.0f - a_t / a_prev);
    const float std_dev = eta_ * std::sqrt(variance);
    const float direction = std::sqrt((1.0f - a_prev) - std_dev * std_dev);
    const float sqrt_a_prev = std::sqrt(a_prev);
    const float range = static_cast<float>(c_.clip_sample_range);
    const bool add_noise = eta_ > 0.0f;
    for (size_t j = 0; j < n; ++j) {
      const float m = model_output[j], x = sample[j];
      float x0, eps;
      switch (c_.prediction) {
        case Prediction::kEpsilon:
          x0 = (x - sqrt_b * m) / sqrt_a;
          eps = m;
          break;
        case Prediction::kSample:
          x0 = m;
          eps = (x - sqrt_a * x0) / sqrt_b;
          break;
        default:
          x0 = sqrt_a * x - sqrt_b * m;
          eps = sqrt_a * m + sqrt_b * x;
          break;
      }
      if (c_.clip_sample) x0 = clamp(x0, -range, range);
      float prev = sqrt_a_prev * x0 + direction * eps;
      if (add_noise) prev = prev + std_dev * noise[j];
      sample[j] = prev;
    }
  }

 private:
  Config c_;
  float final_alpha_cumprod_ = 1.0f;
  std::vector<int64_t> int_timesteps_;
  int64_t step_ratio_ = 1;
};

// ------------------------------------------------------------------ Euler

// np.interp(x, arange(len(fp)), fp) in float64.
double np_interp_unit(double x, const std::vector<float>& fp) {
  const int64_t last = static_cast<int64_t>(fp.size()) - 1;
  if (std::isnan(x)) return x;
  if (x < 0) return fp.front();
  if (x > static_cast<double>(last)) return fp.back();
  const int64_t j = static_cast<int64_t>(x);  // xp[j] <= x < xp[j + 1]
  const double y0 = fp[static_cast<size_t>(j)];
  if (j == last || static_cast<double>(j) == x) return y0;
  const double y1 = fp[static_cast<size_t>(j + 1)];
  const double slope = (y1 - y0) / 1.0;
  double y = slope * (x - static_cast<double>(j)) + y0;
  if (std::isnan(y)) {  // numpy retries from the right end, then takes y0 if flat
    y = slope * (x - static_cast<double>(j + 1)) + y1;
    if (std::isnan(y) && y0 == y1) y = y0;
  }
  return y;
}

class EulerScheduler final : public Scheduler {
 public:
  EulerScheduler(const Config& c, std::vector<float> ac) : Scheduler(SchedulerKind::kEuler, std::move(ac)), c_(c) {
    // diffusers pins the zero-SNR end so its sigma stays finite (4096).
    if (c.rescale_betas_zero_snr) alphas_cumprod_.back() = 1.0f / 16777216.0f;
    for (float a : alphas_cumprod_) train_sigmas_.push_back(std::sqrt((1.0f - a) / a));
    for (float s : train_sigmas_) log_sigmas_.push_back(static_cast<float>(std::log(static_cast<double>(s))));
  }

 protected:
  Status compute_timesteps(int n) override {
    const int64_t train = num_train_timesteps();
    // Leading and trailing spacing repeat timesteps past train steps.
    if (n > train && c_.spacing != Spacing::kLinspace) return too_many_steps(n, train);
    LORARAR_ASSIGN_OR_RETURN(std::vector<double> t64, spaced_timesteps(c_.spacing, train, n, 0));
    std::vector<float> t(t64.size());
    for (size_t i = 0; i < t.size(); ++i) t[i] = static_cast<float>(t64[i]);
    // Euler adds steps_offset in float32 after the cast.
    if (c_.spacing == Spacing::kLeading) {
      for (float& v : t) v = v + static_cast<float>(c_.steps_offset);
    }

    std::vector<double> sig;
    if (!c_.log_linear) {
      for (float v : t) sig.push_back(np_interp_unit(v, train_sigmas_));
    } else {
      // torch.linspace(log(sigma_max), log(sigma_min), n + 1).exp(), float32.
      const auto logs = torch_linspace_f32(log_sigmas_.back(), log_sigmas_.front(), n + 1);
      for (float l : logs) sig.push_back(static_cast<float>(std::exp(static_cast<double>(l))));
    }
    std::vector<double> t_from_sigmas;
    if (c_.karras || c_.exponential) {
      const double lo = c_.sigma_min ? *c_.sigma_min : sig.back();
      const double hi = c_.sigma_max ? *c_.sigma_max : sig.front();
      std::vector<double> out;
      if (c_.karras) {  // Karras et al. 2022, rho = 7
        const double rho = 7.0;
        const double min_inv = std::pow(lo, 1 / rho), max_inv = std::pow(hi, 1 / rho);
        for (double r : np_linspace(0.0, 1.0, n)) out.push_back(std::pow(max_inv + r * (min_inv - max_inv), rho));
      } else {
        for (double l : np_linspace(std::log(hi), std::log(lo), n)) out.push_back(std::exp(l));
      }
      sig = std::move(out);
      t.clear();
      for (double s : sig) t.push_back(static_cast<float>(sigma_to_t(s)));
    }
    sig.push_back(c_.final_sigma_min ? train_sigmas_.front() : 0.0);
    sigmas_.assign(sig.size(), 0.0f);
    for (size_t i = 0; i < sig.size(); ++i) sigmas_[i] = static_cast<float>(sig[i]);
    if (c_.continuous && c_.prediction == Prediction::kVPrediction) {
      t.clear();
      for (size_t i = 0; i + 1 < sigmas_.size(); ++i) t.push_back(0.25f * std::log(sigmas_[i]));
    }
    timesteps_ = std::move(t);
    return check_decreasing(timesteps_, n);
  }

  float noise_sigma() const override {
    float m = 0.0f;
    for (float s : sigmas_) m = std::max(m, s);
    if (c_.spacing != Spacing::kLeading) return m;
    return std::sqrt(m * m + 1.0f);
  }

  void scale(float* sample, size_t n, int i) const override {
    const float sigma = sigmas_[static_cast<size_t>(i)];
    const float d = std::sqrt(sigma * sigma + 1.0f);
    for (size_t j = 0; j < n; ++j) sample[j] = sample[j] / d;
  }

  bool needs_noise(int) const override { return false; }

  void step_impl(const float* model_output, float* sample, size_t n, int i, const float*) const override {
    // s_churn = 0 (diffusers' default): sigma_hat = sigma, no noise.
    const float sigma = sigmas_[static_cast<size_t>(i)];
    const float dt = sigmas_[static_cast<size_t>(i) + 1] - sigma;
    const float v_scale = sigma * sigma + 1.0f;
    const float v_out = -sigma / std::sqrt(v_scale);
    for (size_t j = 0; j < n; ++j) {
      const float m = model_output[j], x = sample[j];
      float x0;
      switch (c_.prediction) {
        case Prediction::kEpsilon: x0 = x - sigma * m; break;
        case Prediction::kSample: x0 = m; break;
        default: x0 = m * v_out + x / v_scale; break;
      }
      const float derivative = (x - x0) / sigma;
      sample[j] = x + derivative * dt;
    }
  }

 private:
  // diffusers' _sigma_to_t: the fractional index of sigma between the
  // training log-sigmas.
  double sigma_to_t(double sigma) const {
    const double log_sigma = std::log(std::max(sigma, 1e-10));
    size_t low = 0;
    for (size_t i = 0; i < log_sigmas_.size(); ++i) {
      if (log_sigma - static_cast<double>(log_sigmas_[i]) >= 0) low = i;
    }
    low = std::min(low, log_sigmas_.size() - 2);
    const double lo = log_sigmas_[low], hi = log_sigmas_[low + 1];
    double w = (lo - log_sigma) / (lo - hi);
    w = std::isnan(w) ? w : std::min(std::max(w, 0.0), 1.0);
    return (1 - w) * static_cast<double>(low) + w * static_cast<double>(low + 1);
  }

  Config c_;
  std::vector<float> train_sigmas_;
  std::vector<float> log_sigmas_;
};

// ------------------------------------------------------------------ LCM

class LcmScheduler final : public Scheduler {
 public:
  LcmScheduler(const Config& c, std::vector<float> ac) : Scheduler(SchedulerKind::kLcm, std::move(ac)), c_(c) {
    final_alpha_cumprod_ = c.set_alpha_to_one ? 1.0f : alphas_cumprod_.front();
  }

 protected:
  Status compute_timesteps(int n) override {
    const int64_t train = num_train_timesteps(), original = c_.original_inference_steps;
    if (n > train) return too_many_steps(n, train);
    if (n > original) {
      return Status(Error::kInvalidArgument, "num_inference_steps " + std::to_string(n) +
                                                 " is larger than original_inference_steps " +
                                                 std::to_string(original));
    }
    // The distillation schedule, k - 1, 2k - 1, ..., original * k - 1, read
    // from the top at floor(linspace(0, original, n, endpoint=False)).
    const int64_t k = train / original;
    const auto idx = np_linspace(0.0, static_cast<double>(original), n, /*endpoint=*/false);
    int_timesteps_.clear();
    for (double v : idx) int_timesteps_.push_back((original - static_cast<int64_t>(std::floor(v))) * k - 1);
    timesteps_.assign(int_timesteps_.begin(), int_timesteps_.end());
    return check_decreasing(timesteps_, n);
  }

  bool needs_noise(int i) const override { return i != num_inference_steps() - 1; }

  void step_impl(const float* model_output, float* sample, size_t n, int i, const float* noise) const override {
    const int64_t t = int_timesteps_[static_cast<size_t>(i)];
    const bool last = i == num_inference_steps() - 1;
    const int64_t prev_t = last ? t : int_timesteps_[static_cast<size_t>(i) + 1];
    const float a_t = alphas_cumprod_[static_cast<size_t>(t)];
    const float a_prev = prev_t >= 0 ? alphas_cumprod_[static_cast<size_t>(prev_t)] : final_alpha_cumprod_;
    const float sqrt_a = std::sqrt(a_t), sqrt_b = std::sqrt(1.0f - a_t);
    const float sqrt_a_prev = std::sqrt(a_prev), sqrt_b_prev = std::sqrt(1.0f - a_prev);
    // Boundary-condition scalings (sigma_data = 0.5); torch evaluates 0.25 / x
    // as x.reciprocal() * 0.25.
    const float scaled = static_cast<float>(t) * static_cast<float>(c_.timestep_scaling);
    const float q = scaled * scaled + 0.25f;
    const float c_skip = (1.0f / q) * 0.25f;
    const float c_out = scaled / std::sqrt(q);
    const float range = static_cast<float>(c_.clip_sample_range);
    for (size_t j = 0; j < n; ++j) {
      const float m = model_output[j], x = sample[j];
      float x0;
      switch (c_.prediction) {
        case Prediction::kEpsilon: x0 = (x - sqrt_b * m) / sqrt_a; break;
        case Prediction::kSample: x0 = m; break;
        default: x0 = sqrt_a * x - sqrt_b * m; break;
      }
      if (c_.clip_sample) x0 = clamp(x0, -range, range);
      const float denoised = c_out * x0 + c_skip * x;
      sample[j] = last ? denoised : sqrt_a_prev * denoised + sqrt_b_prev * noise[j];
    }
  }

 private:
  Config c_;
  float final_alpha_cumprod_ = 1.0f;
  std::vector<int64_t> int_timesteps_;
};

}  // namespace

// ------------------------------------------------------------------ Scheduler

const char* scheduler_kind_name(SchedulerKind kind) {
  switch (kind) {
    case SchedulerKind::kDdim: return "ddim";
    case SchedulerKind::kEuler: return "euler";
    case SchedulerKind::kLcm: return "lcm";
  }
  return "?";
}

bool scheduler_kind_from_name(std::string_view name, SchedulerKind* out) {
  if (name == "ddim" || name == "DDIMScheduler") {
    *out = SchedulerKind::kDdim;
  } else if (name == "euler" || name == "EulerDiscreteScheduler") {
    *out = SchedulerKind::kEuler;
  } else if (name == "lcm" || name == "LCMScheduler") {
    *out = SchedulerKind::kLcm;
  } else {
    return false;
  }
  return true;
}

Result<std::unique_ptr<Scheduler>> Scheduler::create(SchedulerKind kind, std::string_view config_json) {
  LORARAR_ASSIGN_OR_RETURN(Config c, parse_config(kind, config_json));
  LORARAR_ASSIGN_OR_RETURN(std::vector<float> ac, make_alphas_cumprod(c));
  std::unique_ptr<Scheduler> s;
  switch (kind) {
    case SchedulerKind::kDdim: s = std::make_unique<DdimScheduler>(c, std::move(ac)); break;
    case SchedulerKind::kEuler: s = std::make_unique<EulerScheduler>(c, std::move(ac)); break;
    case SchedulerKind::kLcm: s = std::make_unique<LcmScheduler>(c, std::move(ac)); break;
  }
  return Result<std::unique_ptr<Scheduler>>(std::move(s));
}

Status Scheduler::set_timesteps(int num_inference_steps) {
  LORARAR_RETURN_IF_ERROR(check_steps(num_inference_steps));
  timesteps_.clear();
  sigmas_.clear();
  Status s = compute_timesteps(num_inference_steps);
  if (!s.is_ok()) {
    timesteps_.clear();
    sigmas_.clear();
  }
  return s;
}

float Scheduler::init_noise_sigma() const { return noise_sigma(); }

Status Scheduler::set_eta(float eta) {
  if (!(eta >= 0.0f && std::isfinite(eta))) {
    return Status(Error::kInvalidArgument, "eta must be a finite number >= 0, got " + std::to_string(eta));
  }
  if (kind_ != SchedulerKind::kDdim && eta != 0.0f) {
    return Status(Error::kInvalidArgument,
                  std::string("eta applies to DDIM only, not to ") + scheduler_kind_name(kind_));
  }
  eta_ = eta;
  return Status::ok();
}

Status Scheduler::check_step_args(const void* a, const void* b, size_t n, int step_index) const {
  if (timesteps_.empty()) return Status(Error::kInvalidArgument, "set_timesteps has not been called");
  if (step_index < 0 || step_index >= num_inference_steps()) {
    return Status(Error::kInvalidArgument, "step index " + std::to_string(step_index) + " is outside [0, " +
                                               std::to_string(num_inference_steps()) + ")");
  }
  if (n > 0 && (!a || !b)) return Status(Error::kInvalidArgument, "null sample or model output");
  return Status::ok();
}

Status Scheduler::scale_model_input(float* sample, size_t n, int step_index) const {
  LORARAR_RETURN_IF_ERROR(check_step_args(sample, sample, n, step_index));
  scale(sample, n, step_index);
  return Status::ok();
}

Status Scheduler::step(const float* model_output, float* sample, size_t n, int step_index, const float* noise) const {
  LORARAR_RETURN_IF_ERROR(check_step_args(model_output, sample, n, step_index));
  const bool wants_noise = needs_noise(step_index);
  if (wants_noise && n > 0 && !noise) {
    return Status(Error::kInvalidArgument,
                  std::string(scheduler_kind_name(kind_)) + " step " + std::to_string(step_index) + " needs noise");
  }
  step_impl(model_output, sample, n, step_index, wants_noise ? noise : nullptr);
  return Status::ok();
}

bool Scheduler::step_needs_noise(int step_index) const {
  return step_index >= 0 && step_index < num_inference_steps() && needs_noise(step_index);
}

}  // namespace lorarar
