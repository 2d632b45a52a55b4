"""The native schedulers against diffusers 0.42.1's DDIMScheduler, EulerDiscreteScheduler and LCMScheduler.

Each case runs a full denoising loop twice, in diffusers and in the engine, on a (1, 4, 16, 16) latent with seeded
random model outputs standing in for the UNet, and compares the timesteps, init_noise_sigma, every
scale_model_input output and every step's sample. Noise that diffusers would draw (LCM, DDIM with eta > 0) comes
from the engine's generator and is handed to both.

Two references: diffusers as installed, whose float32 sqrt is MKL's on x86 Linux and 1 ulp off the correctly
rounded value about one time in six, and diffusers with torch's float32 sqrt made correctly rounded (as IEEE sqrt,
and torch without MKL, give). The engine uses IEEE sqrt, so against the second reference it is bit-identical.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, EulerDiscreteScheduler, LCMScheduler
from diffusers.schedulers import scheduling_ddim, scheduling_lcm

from lorarar import LoraError
from lorarar._native import Scheduler, randn
from lorarar.world.models import SCHEDULER_CONFIG

CLASSES: dict[str, Any] = {"ddim": DDIMScheduler, "euler": EulerDiscreteScheduler, "lcm": LCMScheduler}
SHAPE = (1, 4, 16, 16)
STEPS = (1, 2, 4, 8, 25, 50)
EXACT_STEPS = (1, 2, 4, 25)  # bit-identical at every step: fewer loops show as much

# Stable Diffusion 1.5's scheduler_config.json, as shipped (a PNDMScheduler config).
SD15: dict[str, Any] = {
    "_class_name": "PNDMScheduler",
    "_diffusers_version": "0.6.0",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
    "clip_sample": False,
}
# latent-consistency/lcm-lora-sdv1-5's scheduler config.
LCM: dict[str, Any] = {
    "_class_name": "LCMScheduler",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "clip_sample_range": 1.0,
    "num_train_timesteps": 1000,
    "original_inference_steps": 50,
    "prediction_type": "epsilon",
    "rescale_betas_zero_snr": False,
    "set_alpha_to_one": True,
    "steps_offset": 1,
    "thresholding": False,
    "timestep_scaling": 10.0,
    "timestep_spacing": "leading",
    "trained_betas": None,
}
CONFIGS: dict[str, dict[str, Any]] = {
    "sd15": SD15,
    "world": SCHEDULER_CONFIG,
    "zero_snr_v": {
        **SD15,
        "prediction_type": "v_prediction",
        "timestep_spacing": "trailing",
        "rescale_betas_zero_snr": True,
    },
    "linspace": {"beta_schedule": "linear", "timestep_spacing": "linspace", "clip_sample": True},
    "cosine_sample": {
        "beta_schedule": "squaredcos_cap_v2",
        "prediction_type": "sample",
        "clip_sample": True,
        "clip_sample_range": 1.5,
        "set_alpha_to_one": False,
        "steps_offset": 1,
    },
    "lcm": LCM,
    # Euler's own settings.
    "karras": {**SD15, "use_karras_sigmas": True, "final_sigmas_type": "sigma_min", "timestep_spacing": "leading"},
    "exponential": {**SD15, "use_exponential_sigmas": True, "timestep_spacing": "trailing"},
    "log_linear_continuous_v": {
        **SD15,
        "interpolation_type": "log_linear",
        "prediction_type": "v_prediction",
        "timestep_type": "continuous",
    },
}
EULER_ONLY = ("karras", "exponential", "log_linear_continuous_v")
# Euler timesteps computed through a logarithm (numpy's SIMD log, torch's MKL log): within 1e-4, not identical.
LOG_TIMESTEPS = EULER_ONLY

CASES = [
    (kind, name, 0.0)
    for kind in CLASSES
    for name in CONFIGS
    if kind == "euler" or name not in EULER_ONLY  # the others ignore Euler's fields: nothing new to test
] + [("ddim", "sd15", 1.0), ("ddim", "zero_snr_v", 0.5)]


def correctly_rounded_sqrt(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch's float32 sqrt (x.sqrt(), x ** 0.5) through float64: the correctly rounded result."""
    sqrt, power = torch.Tensor.sqrt, torch.Tensor.__pow__

    def exact_sqrt(self: torch.Tensor) -> torch.Tensor:
        return sqrt(self.double()).float() if self.dtype == torch.float32 else sqrt(self)

    def exact_pow(self: torch.Tensor, exponent: Any) -> torch.Tensor:
        return exact_sqrt(self) if isinstance(exponent, float) and exponent == 0.5 else power(self, exponent)

    monkeypatch.setattr(torch.Tensor, "sqrt", exact_sqrt)
    monkeypatch.setattr(torch.Tensor, "__pow__", exact_pow)


def rel_error(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got - want).max() / max(float(np.abs(want).max()), 1e-30))


def run_loop(kind: str, name: str, steps: int, eta: float, exact: bool, pending: list[torch.Tensor]) -> float:
    """One denoising loop in both; returns the worst relative error of any compared array."""
    config = CONFIGS[name]
    ref = CLASSES[kind].from_config(config)
    native = Scheduler(kind, json.dumps(config))
    native.eta = eta
    ref.set_timesteps(steps)
    native.set_timesteps(steps)

    want_t = ref.timesteps.numpy().astype(np.float32)
    if kind == "euler" and name in LOG_TIMESTEPS:
        np.testing.assert_allclose(native.timesteps, want_t, rtol=0, atol=1e-4)  # 1 ulp at t ~ 1000: 6.1e-5
    else:
        np.testing.assert_array_equal(native.timesteps, want_t)
    want_sigma = np.float32(float(ref.init_noise_sigma))
    checks: list[tuple[np.ndarray, np.ndarray]] = [
        (native.alphas_cumprod, ref.alphas_cumprod.numpy()),
        (np.array([native.init_noise_sigma], np.float32), np.array([want_sigma])),
    ]
    if kind == "euler":
        checks.append((native.sigmas, ref.sigmas.numpy()))

    seed = 1000 * steps + len(kind)
    rng = np.random.default_rng(seed)
    latents = randn(seed, list(SHAPE))
    offset = latents.size
    x_ref = torch.from_numpy(latents) * ref.init_noise_sigma
    x_native = latents * np.float32(native.init_noise_sigma)
    for i, t in enumerate(ref.timesteps):
        checks.append((native.scale_model_input(x_native, i), ref.scale_model_input(x_ref, t).numpy()))
        model_output = rng.standard_normal(SHAPE, dtype=np.float32)  # stands in for the UNet
        noise = None
        if native.step_needs_noise(i):
            noise = randn(seed, list(SHAPE), offset)
            offset += noise.size
            pending.append(torch.from_numpy(noise.copy()))
        if kind == "ddim":
            variance_noise = pending.pop() if pending else None
            out = ref.step(torch.from_numpy(model_output), t, x_ref, eta=eta, variance_noise=variance_noise)
        else:
            out = ref.step(torch.from_numpy(model_output), t, x_ref)
        assert not pending, f"step {i}: the engine asks for noise diffusers does not draw"
        x_ref = out.prev_sample
        x_native = native.step(model_output, x_native, i, noise)
        checks.append((x_native, x_ref.numpy()))

    worst = 0.0
    for got, want in checks:
        assert got.shape == want.shape and got.dtype == np.float32
        if exact:
            np.testing.assert_array_equal(got, want)
        worst = max(worst, rel_error(got, want))
    return worst


@pytest.mark.parametrize("torch_sqrt", ["stock", "correctly_rounded"])
@pytest.mark.parametrize(("kind", "name", "eta"), CASES)
def test_denoising_loop_matches_diffusers(
    kind: str, name: str, eta: float, torch_sqrt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    exact = torch_sqrt == "correctly_rounded"
    if exact:
        correctly_rounded_sqrt(monkeypatch)
    pending: list[torch.Tensor] = []

    def noise_from_engine(*args: Any, **kwargs: Any) -> torch.Tensor:
        assert pending, "diffusers draws noise the engine does not ask for"
        return pending.pop()

    monkeypatch.setattr(scheduling_lcm, "randn_tensor", noise_from_engine)
    monkeypatch.setattr(scheduling_ddim, "randn_tensor", noise_from_engine)
    # Zero-SNR Euler starts at sigma = sqrt(2^24 - 1) ~ 4096, within a hair of a float32 rounding tie: MKL rounds it
    # up to 4096, IEEE down, and the first step's x + (x - x0) / sigma * (sigma_next - sigma) cancels ~4096 down to
    # ~sigma_next, turning that one ulp into ~1e-4 of the result (bit-identical with IEEE sqrt).
    tolerance = 5e-4 if (kind, name) == ("euler", "zero_snr_v") else 1e-5
    for steps in EXACT_STEPS if exact else STEPS:
        worst = run_loop(kind, name, steps, eta, exact, pending)
        assert worst <= tolerance, f"{steps} steps: relative error {worst:.3g}"


def test_trailing_step_counts_diffusers_gets_wrong_are_refused() -> None:
    ref = DDIMScheduler(timestep_spacing="trailing")
    ref.set_timesteps(61)
    assert len(ref.timesteps) == 62 and int(ref.timesteps[-1]) == -1  # diffusers' extra step at t = -1
    native = Scheduler("ddim", json.dumps({"timestep_spacing": "trailing"}))
    with pytest.raises(LoraError, match="gives 62 timesteps for 61 steps"):
        native.set_timesteps(61)


def test_errors_raise_lora_error() -> None:
    with pytest.raises(LoraError, match='unknown scheduler "pndm"'):
        Scheduler("pndm", "{}")
    with pytest.raises(LoraError, match="thresholding") as info:
        Scheduler("DDIMScheduler", json.dumps({"thresholding": True}))
    assert info.value.code_name == "unsupported"
    euler = Scheduler("EulerDiscreteScheduler", json.dumps(SD15))
    with pytest.raises(LoraError, match="eta applies to DDIM only"):
        euler.eta = 0.5
    with pytest.raises(LoraError, match="set_timesteps has not been called"):
        euler.step(np.zeros(4, np.float32), np.zeros(4, np.float32), 0)
    lcm = Scheduler("lcm", json.dumps(LCM))
    lcm.set_timesteps(4)
    with pytest.raises(LoraError, match="lcm step 0 needs noise"):
        lcm.step(np.zeros(4, np.float32), np.zeros(4, np.float32), 0)
    with pytest.raises(LoraError, match="model_output has 3 values, the sample 4"):
        lcm.step(np.zeros(3, np.float32), np.zeros(4, np.float32), 3)


def test_randn_is_a_seekable_stream() -> None:
    a = randn(7, [2, 3, 5])
    assert a.shape == (2, 3, 5) and a.dtype == np.float32
    np.testing.assert_array_equal(randn(7, [30]), a.reshape(-1))
    np.testing.assert_array_equal(randn(7, [13], offset=17), a.reshape(-1)[17:])
    assert not np.array_equal(randn(8, [30]), a.reshape(-1))
