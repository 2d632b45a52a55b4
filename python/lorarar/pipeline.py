"""The PyTorch reference for the engine's pipeline: diffusers on the model a bundle was exported from.

Same prompt, scheduler, seed and merge as ``lorarar.Context.generate``: the initial latents and every step's
noise come from the engine's own Philox stream (``lorarar._native.randn``), so the two pipelines see identical
random numbers and can be compared step by step.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lorarar.errors import LoraError

SCHEDULER_CLASSES = {"ddim": "DDIMScheduler", "euler": "EulerDiscreteScheduler", "lcm": "LCMScheduler"}


def bundle_source(bundle: Path) -> tuple[Path, Path | None]:
    """The diffusers folder a bundle came from, and its hypernetwork folder (if it was exported with one)."""
    from lorarar.export import manifest as bundle_manifest

    manifest = bundle_manifest.read(bundle)
    source = manifest.get("source")
    if not isinstance(source, dict) or not isinstance(source.get("path"), str):
        raise LoraError(f"{bundle / bundle_manifest.MANIFEST}: no source.path (the model the bundle came from)", 2)
    model = Path(source["path"])
    programs = manifest.get("programs")
    hyper = programs.get("hypernet") if isinstance(programs, dict) else None
    hypernet = hyper.get("source") if isinstance(hyper, dict) else None
    hyper_path = Path(hypernet) if isinstance(hypernet, str) and Path(hypernet).exists() else None
    if not (model / "model_index.json").exists():
        raise LoraError(f"{bundle}: the model it was exported from ({model}) is not on this machine")
    return model, hyper_path


def bundle_vae_tiling(bundle: Path) -> tuple[int, int] | None:
    """(tile, overlap) when the bundle decodes in tiles (export --vae-tile), else None."""
    from lorarar.export import manifest as bundle_manifest

    programs = bundle_manifest.read(bundle).get("programs")
    vae = programs.get("vae_decoder") if isinstance(programs, dict) else None
    tiling = vae.get("tiling") if isinstance(vae, dict) else None
    if tiling is None:
        return None
    tile, overlap = (tiling.get(k) if isinstance(tiling, dict) else None for k in ("tile", "overlap"))
    if not isinstance(tile, int) or not isinstance(overlap, int) or not 0 <= overlap < tile:
        raise LoraError(f"{bundle / bundle_manifest.MANIFEST}: programs.vae_decoder.tiling is not {{tile, overlap}}", 2)
    return tile, overlap


@contextlib.contextmanager
def engine_noise(seed: int, numel: int) -> Iterator[None]:
    """Makes diffusers' LCM / DDIM steps draw the engine's noise for step i: elements [n (i+1), n (i+2))."""
    import diffusers.schedulers.scheduling_ddim as ddim
    import diffusers.schedulers.scheduling_lcm as lcm

    from lorarar._native import randn

    calls = {"step": 0}

    def fake(shape: Any, generator: Any = None, device: Any = None, dtype: Any = None, **_: Any) -> torch.Tensor:
        calls["step"] += 1
        noise = randn(seed, list(shape), numel * calls["step"])
        return torch.from_numpy(np.asarray(noise)).to(dtype or torch.float32)

    saved = (lcm.randn_tensor, ddim.randn_tensor)
    lcm.randn_tensor = ddim.randn_tensor = fake
    try:
        yield
    finally:
        lcm.randn_tensor, ddim.randn_tensor = saved


def load_reference(model: Path, scheduler: str) -> Any:
    import diffusers
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(model, torch_dtype=torch.float32)
    pipe.scheduler = getattr(diffusers, SCHEDULER_CLASSES[scheduler]).from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@torch.no_grad()
def run_reference(
    pipe: Any,
    lora: Path | None,
    prompt: str,
    negative_prompt: str,
    steps: int,
    guidance: float,
    seed: int,
    trace: list[np.ndarray] | None = None,
    vae_tiling: tuple[int, int] | None = None,
) -> np.ndarray:
    """The pipeline's image as H x W x RGB8; ``vae_tiling`` (tile, overlap) decodes as a tiled bundle does."""
    from lorarar._native import randn

    shape = (1, pipe.unet.config.in_channels, pipe.unet.config.sample_size, pipe.unet.config.sample_size)
    latents = torch.from_numpy(np.asarray(randn(seed, list(shape), 0)))
    numel = int(np.prod(shape))
    callback = None
    if trace is not None:

        def callback(_pipe: Any, _i: int, _t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
            trace.append(kwargs["latents"].numpy().copy())
            return kwargs

    if lora is not None:
        pipe.load_lora_weights(str(lora), adapter_name="generate")
        pipe.fuse_lora(lora_scale=1.0, adapter_names=["generate"])
    try:
        with engine_noise(seed, numel):
            images = pipe(
                prompt,
                negative_prompt=negative_prompt or None,
                num_inference_steps=steps,
                guidance_scale=guidance,
                latents=latents,
                output_type="np" if vae_tiling is None else "latent",
                height=shape[2] * pipe.vae_scale_factor,
                width=shape[3] * pipe.vae_scale_factor,
                callback_on_step_end=callback,
            ).images
        if vae_tiling is not None:
            images = _tiled_images(pipe, images, *vae_tiling)
    finally:
        if lora is not None:
            pipe.unfuse_lora()
            pipe.unload_lora_weights()
    return np.asarray((np.clip(images[0], 0, 1) * 255).round(), dtype=np.uint8)


def _tiled_images(pipe: Any, latents: torch.Tensor, tile: int, overlap: int) -> np.ndarray:
    """What diffusers' decode + postprocess("np") give, decoded tile by tile (each tile clamped as the program is)."""
    from lorarar.tiled_decode import tiled_decode

    def decode(z: torch.Tensor) -> torch.Tensor:
        image: torch.Tensor = pipe.vae.decode(z, return_dict=False)[0]
        return image.clamp(-1.0, 1.0)

    image = tiled_decode(decode, latents / pipe.vae.config.scaling_factor, tile, overlap, pipe.vae_scale_factor)
    return (image / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()


def merged_lora(content: Path | None, style: Path | None, method: str, hypernet: Path | None, tmp: Path) -> Path | None:
    from lorarar import LoraFile
    from lorarar.merge.methods import load_hypernet, merge

    if content is None or style is None:
        return content or style
    net = load_hypernet(hypernet) if method == "hypernet" and hypernet else None
    if method == "hypernet" and net is None:
        raise LoraError("the bundle was exported without a trained hypernetwork folder on this machine")
    adapter, _ = merge(LoraFile.load(str(content)), LoraFile.load(str(style)), method, hypernet=net)
    out = tmp / "merged.safetensors"
    adapter.save(str(out))
    return out


def generate_torch(
    bundle: Path,
    content: Path | None,
    style: Path | None,
    method: str,
    prompt: str,
    negative_prompt: str,
    steps: int,
    guidance: float,
    scheduler: str,
    seed: int,
) -> tuple[np.ndarray, dict[str, float]]:
    model, hypernet = bundle_source(bundle)
    t0 = time.perf_counter()
    pipe = load_reference(model, scheduler)
    t_load = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        lora = merged_lora(content, style, method, hypernet, Path(tmp))
        t_merge = time.perf_counter()
        image = run_reference(
            pipe, lora, prompt, negative_prompt, steps, guidance, seed, vae_tiling=bundle_vae_tiling(bundle)
        )
    t_end = time.perf_counter()
    return image, {
        "pipeline_load_ms": (t_load - t0) * 1e3,
        "merge_ms": (t_merge - t_load) * 1e3,
        "denoise_and_decode_ms": (t_end - t_merge) * 1e3,
        "end_to_end_ms": (t_end - t_load) * 1e3,
    }
