"""PyTorch reference for the merge and fuse math, written from the definitions.

The product is the native engine; this module exists so tests (and ``--engine torch``) can check it against an
independent implementation:

    dW = (s_c B_c A_c) diag(m_c) + (s_s B_s A_s) diag(m_s) = B' A'
    A' = [s_c A_c diag(m_c) ; s_s A_s diag(m_s)],  B' = [B_c, B_s]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lorarar._native import LoraFile


@dataclass(frozen=True)
class Factors:
    """One layer of a LoRA: dW = scale * up @ down."""

    down: torch.Tensor  # (rank, in)
    up: torch.Tensor  # (out, rank)
    scale: float


def read_factors(lora: LoraFile) -> dict[str, Factors]:
    """The layers of a parsed LoRA as float32 torch tensors (the native parser reads the file)."""
    out: dict[str, Factors] = {}
    for layer in lora.layers:
        a, b = lora.factors(layer.name)
        out[layer.name] = Factors(torch.from_numpy(np.asarray(a)), torch.from_numpy(np.asarray(b)), layer.scale)
    return out


def fold(
    content: dict[str, Factors],
    style: dict[str, Factors],
    content_scale: float = 1.0,
    style_scale: float = 1.0,
    coefficients: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The folded adapter (A', B') per layer; layers in one LoRA only keep that one."""
    coefficients = coefficients or {}
    folded: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for name in sorted(set(content) | set(style)):
        downs, ups = [], []
        for source, weight, which in ((content, content_scale, 0), (style, style_scale, 1)):
            if name not in source:
                continue
            f = source[name]
            down = f.down * (f.scale * weight)
            if name in coefficients:
                down = down * coefficients[name][which].to(torch.float32)[None, :]
            downs.append(down)
            ups.append(f.up)
        folded[name] = (torch.cat(downs, dim=0), torch.cat(ups, dim=1))
    return folded


def fuse(weight: torch.Tensor, down: torch.Tensor, up: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """W + scale * B' A', computed in float64 and rounded once to W's dtype."""
    shape = weight.shape
    w = weight.reshape(shape[0], -1).to(torch.float64)
    w = w + scale * (up.to(torch.float64) @ down.to(torch.float64))
    return w.to(weight.dtype).reshape(shape)


def save_adapter(folded: dict[str, tuple[torch.Tensor, torch.Tensor]], path: str) -> None:
    """Writes a folded adapter as a diffusers/peft LoRA (scales live in A', so alpha = rank per layer)."""
    import json

    from safetensors.torch import save_file

    from lorarar.formats.atomic import atomic_file

    tensors: dict[str, torch.Tensor] = {}
    ranks: dict[str, int] = {}
    for name, (down, up) in folded.items():
        tensors[f"unet.{name}.lora_A.weight"] = down.contiguous()
        tensors[f"unet.{name}.lora_B.weight"] = up.contiguous()
        ranks[name] = down.shape[0]
    common = max(set(ranks.values()), key=list(ranks.values()).count)
    pattern = {name: r for name, r in ranks.items() if r != common}
    meta = {
        "unet.r": common,
        "unet.lora_alpha": common,
        "unet.rank_pattern": pattern,
        "unet.alpha_pattern": pattern,
        "unet.target_modules": sorted(ranks),
        "unet.peft_type": "LORA",
    }
    with atomic_file(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt", "lora_adapter_metadata": json.dumps(meta)})
