"""The PyTorch reference pipeline on the default world: diffusers' StableDiffusionPipeline with a LoRA applied.

Every method ends in one LoRA file that the pipeline loads with diffusers' own ``load_lora_weights`` and fuses:
"content" / "style" (one LoRA alone), or a merge of the pair ("direct", "hypernet", "ziplora"; see
lorarar.merge.methods) written by the native engine.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lorarar.errors import LoraError
from lorarar.world import catalog


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


def method_prompt(method: str, content: str | None, style: str | None) -> str:
    """The prompt a method is sampled with: a LoRA alone gets its own prompt, a merge the merged prompt."""
    return prompt_for(content if method != "style" else None, style if method != "content" else None)


def lora_for(
    method: str,
    content: str | None,
    style: str | None,
    root: Path | None,
    tmp: Path,
    hypernet: Any = None,
    world: Any = None,
) -> tuple[Path | None, float]:
    """The LoRA file a method samples with (a merge is written under ``tmp``) and the merge's seconds (0 for a
    LoRA alone). ``hypernet`` / ``world``: already loaded, for callers that merge many pairs."""
    paths = catalog.paths(root)
    if method == "none":
        return None, 0.0
    if method == "content":
        assert content
        return _library_lora(paths.content_lora(content), "subject", content), 0.0
    if method == "style":
        assert style
        return _library_lora(paths.style_lora(style), "style", style), 0.0
    from lorarar import LoraFile
    from lorarar.merge.methods import load_hypernet, merge, parse_method

    assert content and style
    content_path = _library_lora(paths.content_lora(content), "subject", content)
    style_path = _library_lora(paths.style_lora(style), "style", style)
    method, content_scale, style_scale = parse_method(method)
    if method == "hypernet" and hypernet is None:
        hypernet = load_hypernet(paths.hypernet)
    if method == "ziplora" and world is None:
        from lorarar.hypernet.train import PairWorld

        world = PairWorld(root, names=[content, style])
    adapter, seconds = merge(
        LoraFile.load(str(content_path)),
        LoraFile.load(str(style_path)),
        method,
        content_scale=content_scale,
        style_scale=style_scale,
        hypernet=hypernet,
        world=world,
        names=(content, style),
    )
    out = tmp / f"{method}.safetensors"
    adapter.save(str(out))
    return out, seconds


def _library_lora(path: Path, kind: str, name: str) -> Path:
    """The library's LoRA file for a world name; a name the world has but the library does not (half the train
    split, see catalog.LIBRARY_SUBJECTS) fails here, not as a Hub lookup inside diffusers."""
    if not path.exists():
        raise LoraError(
            f"{path}: no such file (the library has no LoRA for the {kind} {name!r}; see 'lorarar world list')", 4
        )
    return path


@torch.no_grad()
def generate(
    pipe: Any,
    prompt: str,
    lora: Path | None,
    n: int,
    seed: int,
    steps: int = 25,
    guidance: float = catalog.GUIDANCE,
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
    with tempfile.TemporaryDirectory() as tmp:
        lora, _ = lora_for(method, content, style, root, Path(tmp))
        pipe = pipe or load_pipeline(root)
        return generate(pipe, method_prompt(method, content, style), lora, n, seed, **kwargs)
