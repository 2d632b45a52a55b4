"""Differentiable LoRA slots in a diffusers UNet, and folding a pair with coefficients, in PyTorch.

Training the hypernetwork (and ZipLoRA's per-pair optimisation) needs gradients through the merge, so this is the
PyTorch form of the native fold (runtime/core/adapter.h): each target Linear gets a slot whose (A', B') the caller
sets, and forward adds (x A'^T) B'^T. The native engine remains the product; tests compare the two.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from lorarar.merge.reference import Factors

Adapter = dict[str, tuple[torch.Tensor, torch.Tensor]]  # module -> (A' (R, in), B' (out, R))
Coefficients = dict[str, tuple[torch.Tensor, torch.Tensor]]  # module -> (m_c (in,), m_s (in,))


class SlotLinear(nn.Module):
    def __init__(self, base: nn.Linear) -> None:
        super().__init__()
        self.base = base
        self.factors: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        if self.factors is None:
            return y
        down, up = self.factors
        return y + (x @ down.T.to(x.dtype)) @ up.T.to(x.dtype)


def install_slots(unet: nn.Module, leaves: Iterable[str] = ("to_q", "to_k", "to_v", "to_out.0")) -> list[str]:
    """Wraps every target Linear of the UNet in a SlotLinear; returns the module names."""
    leaves = tuple(leaves)
    names = [
        n for n, m in unet.named_modules() if isinstance(m, nn.Linear) and n.endswith(tuple("." + x for x in leaves))
    ]
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = unet.get_submodule(parent_name)
        setattr(parent, child, SlotLinear(getattr(parent, child)))
    return names


def set_adapter(unet: nn.Module, adapter: Adapter | None) -> None:
    for name, module in unet.named_modules():
        if isinstance(module, SlotLinear):
            module.factors = adapter.get(name) if adapter else None


def single(lora: dict[str, Factors]) -> Adapter:
    return {name: (f.down * f.scale, f.up) for name, f in lora.items()}


def fold(content: dict[str, Factors], style: dict[str, Factors], coefficients: Coefficients) -> Adapter:
    """A' = [s_c A_c diag(m_c); s_s A_s diag(m_s)], B' = [B_c, B_s]; layers without coefficients are summed."""
    out: Adapter = {}
    for name in sorted(set(content) | set(style)):
        downs, ups = [], []
        for which, source in enumerate((content, style)):
            if name not in source:
                continue
            f = source[name]
            down = f.down * f.scale
            if name in coefficients:
                down = down * coefficients[name][which][None, :]
            downs.append(down)
            ups.append(f.up)
        out[name] = (torch.cat(downs), torch.cat(ups, dim=1))
    return out


def cosine_penalty(coefficients: Coefficients) -> torch.Tensor:
    """ZipLoRA's orthogonality term: sum over layers of |cos(m_c, m_s)|."""
    terms = [torch.nn.functional.cosine_similarity(c, s, dim=0).abs() for c, s in coefficients.values()]
    return torch.stack(terms).sum() if terms else torch.zeros(())
