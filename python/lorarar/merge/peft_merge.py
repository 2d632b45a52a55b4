"""Extra merge baselines from peft's ``add_weighted_adapter``: concatenation (cat), TIES and DARE.

peft implements them on a ``LoraModel``; they read and write only the adapters, never the base weights, so they run
on a skeleton holding one ``nn.Linear`` per LoRA target layer (the right shapes, no weights loaded). The factors come
from the native parser; peft's merged adapter goes back through it as a LoRA file, so every method ends in the same
``Adapter``. TIES and DARE use peft's SVD variants (delta-space merge, refactored to the sum of the ranks, so the SVD
loses nothing); the plain ones merge A and B separately, which is not TIES on the weight deltas.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np

from lorarar._native import Adapter, LayerInfo, LoraFile
from lorarar.errors import LoraError

if TYPE_CHECKING:
    import torch

# method name -> (peft combination_type, density: the fraction of delta entries TIES/DARE keep)
PEFT_METHODS: dict[str, tuple[str, float | None]] = {
    "peft-cat": ("cat", None),
    "peft-ties": ("ties_svd", 0.5),
    "peft-dare": ("dare_ties_svd", 0.5),
}


def _skeleton(layers: dict[str, tuple[int, int]]) -> torch.nn.Module:
    """Nested modules with an ``nn.Linear(in, out)`` (meta-free, bias-less) at every dotted layer name."""
    import torch

    root = torch.nn.Module()
    for name, (n_in, n_out) in layers.items():
        parent = root
        parts = name.split(".")
        for part in parts[:-1]:
            if not hasattr(parent, part):
                parent.add_module(part, torch.nn.Module())
            parent = getattr(parent, part)
        parent.add_module(parts[-1], torch.nn.Linear(n_in, n_out, bias=False))
    return root


def _padded(lora: LoraFile, layer: LayerInfo, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(A, B * scale) zero-padded to ``rank``: the same delta, in a peft adapter with alpha = r (scaling 1)."""
    import torch

    down, up = lora.factors(layer.name)
    a = np.zeros((rank, down.shape[1]), np.float32)
    b = np.zeros((up.shape[0], rank), np.float32)
    a[: down.shape[0]] = down
    b[:, : up.shape[1]] = up * layer.scale
    return torch.from_numpy(a), torch.from_numpy(b)


def peft_merge(
    content: LoraFile,
    style: LoraFile,
    method: str,
    content_scale: float = 1.0,
    style_scale: float = 1.0,
    seed: int = 0,
) -> Adapter:
    """The pair merged by peft's ``add_weighted_adapter`` (weights = the two scales); DARE's random drop is seeded."""
    import torch
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import save

    if method not in PEFT_METHODS:
        raise LoraError(f"unknown peft merge {method!r} ({', '.join(PEFT_METHODS)})")
    combination, density = PEFT_METHODS[method]
    layers: dict[str, tuple[int, int]] = {}
    for lora in (content, style):
        for layer in lora.layers:
            if layer.conv1x1:
                raise LoraError(
                    f"{lora.path}: layer {layer.name!r} is a 1x1 convolution; the peft merges take linear layers"
                )
            layers[layer.name] = (layer.in_features, layer.out_features)
    ranks = {"content": max(layer.rank for layer in content.layers), "style": max(layer.rank for layer in style.layers)}
    model: Any = None
    for adapter, lora in (("content", content), ("style", style)):
        mine = sorted(layer.name for layer in lora.layers)  # a layer only one LoRA has keeps that LoRA's delta
        config = LoraConfig(r=ranks[adapter], lora_alpha=ranks[adapter], target_modules=mine)
        if model is None:
            model = get_peft_model(_skeleton(layers), config, adapter_name=adapter)
        else:
            model.add_adapter(adapter, config)
        state = {}
        for layer in lora.layers:
            a, b = _padded(lora, layer, ranks[adapter])
            key = f"base_model.model.{layer.name}"  # peft's wrapper prefix
            state[f"{key}.lora_A.weight"], state[f"{key}.lora_B.weight"] = a, b
        result = set_peft_model_state_dict(model, state, adapter_name=adapter)
        if result.unexpected_keys:
            raise LoraError(f"{lora.path}: peft did not take {result.unexpected_keys[0]!r}")
    rank = ranks["content"] + ranks["style"]
    torch.manual_seed(seed)
    with torch.no_grad():
        model.add_weighted_adapter(
            ["content", "style"],
            [content_scale, style_scale],
            "merged",
            combination_type=combination,
            svd_rank=rank,
            density=density,
        )
    merged_config = model.peft_config["merged"]
    merged = get_peft_model_state_dict(model, adapter_name="merged")
    # diffusers' layout: "unet." + module + ".lora_A.weight"; peft's keys carry its wrapper prefix.
    state = {
        "unet." + key.removeprefix("base_model.model."): value.contiguous()
        for key, value in merged.items()
        if ".lora_" in key
    }
    config = {"r": merged_config.r, "lora_alpha": merged_config.lora_alpha, "target_modules": sorted(layers)}
    return Adapter.single(LoraFile.from_bytes(save(state), f"{method} merge", json.dumps(config)))
