"""The PyTorch reference pipeline on the default world: diffusers' StableDiffusionPipeline with a LoRA applied.

Every method ends in one LoRA file that the pipeline loads with diffusers' own ``load_lora_weights`` and fuses:
"content" / "style" (one LoRA alone) and "direct" (the two summed, written by the native merge). Merge methods
that compute coefficients (ZipLoRA, the LoRA.rar hypernetwork) plug in through ``register_method``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lorarar.world import catalog

# method name -> function(content LoRA path, style LoRA path, out path) writing the merged LoRA file
MergeFn = Callable[[Path, Path, Path], None]
_METHODS: dict[str, MergeFn] = {}


def register_method(name: str, fn: MergeFn) -> None:
    _METHODS[name] = fn


def _direct(content: Path, style: Path, out: Path) -> None:
    from lorarar import Adapter, LoraFile

    Adapter.merge(LoraFile.load(str(content)), LoraFile.load(str(style)), "direct").save(str(out))


register_method("direct", _direct)


def load_pipeline(root: Path | None = None) -> Any:
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(catalog.paths(root).pipeline, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def prompt_for(content: str | None, style: str | None) -> str:
    if content and style:
        return catalog.merged_prompt(content)
    if content:
        return catalog.content_prompt(content)
    if style:
        return catalog.style_prompt(catalog.STYLE_IMAGE_CLASS[style])
    return "a bird"


def lora_for(method: str, content: str | None, style: str | None, root: Path | None, tmp: Path) -> Path | None:
    paths = catalog.paths(root)
    if method == "none":
        return None
    if method == "content":
        assert content
        return paths.content_lora(content)
    if method == "style":
        assert style
        return paths.style_lora(style)
    if method not in _METHODS:
        raise ValueError(f"unknown method {method!r} (none, content, style, {', '.join(_METHODS)})")
    assert content and style
    out = tmp / f"{method}.safetensors"
    _METHODS[method](paths.content_lora(content), paths.style_lora(style), out)
    return out


@torch.no_grad()
def generate(
    pipe: Any,
    prompt: str,
    lora: Path | None,
    n: int,
    seed: int,
    steps: int = 25,
    guidance: float = 5.0,
    batch: int = 16,
) -> np.ndarray:
    """n images (n, 64, 64, 3) in [0, 1]; image i uses generator seed + i."""
    if lora is not None:
        pipe.load_lora_weights(str(lora), adapter_name="sample")
        pipe.fuse_lora(lora_scale=1.0, adapter_names=["sample"])
    try:
        out = []
        for start in range(0, n, batch):
            count = min(batch, n - start)
            generators = [torch.Generator().manual_seed(seed + start + i) for i in range(count)]
            images = pipe(
                [prompt] * count,
                num_inference_steps=steps,
                guidance_scale=guidance,
                generator=generators,
                output_type="np",
                height=64,
                width=64,
            ).images
            out.append(np.asarray(images, dtype=np.float32))
        return np.concatenate(out)
    finally:
        if lora is not None:
            pipe.unfuse_lora()
            pipe.unload_lora_weights()


def sample(
    content: str | None,
    style: str | None,
    method: str,
    n: int,
    seed: int,
    root: Path | None = None,
    pipe: Any = None,
    **kwargs: Any,
) -> np.ndarray:
    pipe = pipe or load_pipeline(root)
    with tempfile.TemporaryDirectory() as tmp:
        lora = lora_for(method, content, style, root, Path(tmp))
        return generate(
            pipe,
            prompt_for(content if method != "style" else None, style if method != "content" else None),
            lora,
            n,
            seed,
            **kwargs,
        )
