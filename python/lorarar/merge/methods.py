"""One API for every merge method: ``merge(content, style, method=...) -> (Adapter, seconds)``.

- direct: content_scale * content + style_scale * style (the sum by default).
- columns: per-column coefficients read from a file.
- hypernet: LoRA.rar's hypernetwork predicts the coefficients of the merged layers in one pass (low-rank form);
  the other layers are summed.
- ziplora: ZipLoRA's per-pair optimisation of the coefficients (100 Adam steps, lr 0.01, lambda 0.01) against
  the LoRAs' own training images; needs those images, so it is available for the default world's library.

Every method ends in the native fold (``Adapter.merge``); the timing covers computing the coefficients and the fold.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from lorarar._native import Adapter, LoraFile
from lorarar.errors import LoraError
from lorarar.hypernet.model import HyperNet
from lorarar.merge.reference import Factors, read_factors

METHODS = ("direct", "columns", "hypernet", "ziplora")
Coefficients = dict[str, tuple[np.ndarray, np.ndarray]]


def load_hypernet(path: Path) -> HyperNet:
    """A trained hypernetwork folder (config.json + hypernet.safetensors) or the published SDXL file."""
    if path.is_dir():
        if not (path / "config.json").exists():
            raise LoraError(f"{path}: no config.json (not a hypernetwork folder)", 4)
        return HyperNet.load(path)
    if not path.exists():
        raise LoraError(f"{path}: no such file", 4)
    try:
        return HyperNet.from_published(path)
    except (KeyError, RuntimeError) as e:
        raise LoraError(f"{path}: not a LoRA.rar hypernetwork ({e})", 2) from None


@torch.no_grad()
def hypernet_coefficients(hypernet: HyperNet, content: LoraFile, style: LoraFile) -> Coefficients:
    """(m_c, m_s) of every merged layer. Layers of one (out, in) shape go through the hypernetwork together, ranks
    zero-padded to the largest (the same values: padding adds zero columns): a few batched matmuls instead of one
    small call per layer, as the exported program does."""
    merged = {layer.name for layer in content.layers if hypernet.config.is_merged(layer.name)}
    merged &= {layer.name for layer in style.layers}
    c, s = read_factors(content, merged), read_factors(style, merged)
    widths = set(hypernet.config.widths)
    groups: dict[tuple[int, int], list[str]] = {}
    for name in sorted(merged):
        out_features, in_features = c[name].up.shape[0], c[name].down.shape[1]
        if out_features not in widths:
            raise LoraError(
                f"{content.path}: layer {name!r} has {out_features} output features; the hypernetwork serves "
                f"{sorted(widths)}",
                3,
            )
        groups.setdefault((out_features, in_features), []).append(name)
    out: Coefficients = {}
    for names in groups.values():
        rank = max(max(c[n].down.shape[0], s[n].down.shape[0]) for n in names)

        def stack(factors: dict[str, Factors], names: list[str] = names, rank: int = rank) -> list[torch.Tensor]:
            downs = [
                F.pad(factors[n].down * factors[n].scale, (0, 0, 0, rank - factors[n].down.shape[0])) for n in names
            ]
            ups = [F.pad(factors[n].up, (0, rank - factors[n].up.shape[1])) for n in names]
            return [torch.stack(downs), torch.stack(ups)]

        m = hypernet.forward_lowrank(*stack(c), *stack(s)).numpy().astype(np.float32)  # (L, 2, in)
        for i, name in enumerate(names):
            out[name] = (m[i, 0], m[i, 1])
    return out


def merge(
    content: LoraFile,
    style: LoraFile,
    method: str = "direct",
    *,
    content_scale: float = 1.0,
    style_scale: float = 1.0,
    coefficients: Coefficients | None = None,
    hypernet: HyperNet | None = None,
    world: Any = None,
    names: tuple[str, str] | None = None,
) -> tuple[Adapter, float]:
    """The merged adapter and the seconds the merge took (coefficients + fold)."""
    start = time.perf_counter()
    if method == "direct":
        adapter = Adapter.merge(content, style, "direct", content_scale, style_scale)
    elif method == "columns":
        if coefficients is None:
            raise LoraError("the columns merge needs coefficients (--coeffs FILE)")
        adapter = Adapter.merge(content, style, "columns", content_scale, style_scale, coefficients)
    elif method == "hypernet":
        if hypernet is None:
            raise LoraError("the hypernet merge needs a hypernetwork (--hypernet PATH)")
        coeffs = hypernet_coefficients(hypernet, content, style)
        adapter = Adapter.merge(content, style, "columns", content_scale, style_scale, coeffs)
    elif method == "ziplora":
        if world is None or names is None:
            raise LoraError("ZipLoRA needs the LoRAs' training images: available for the default world's library")
        from lorarar.hypernet.train import ziplora_coefficients

        zc = ziplora_coefficients(world, names[0], names[1])
        coeffs = {k: (c.numpy().astype(np.float32), s.numpy().astype(np.float32)) for k, (c, s) in zc.items()}
        adapter = Adapter.merge(content, style, "columns", content_scale, style_scale, coeffs)
    else:
        raise LoraError(f"unknown merge method {method!r} ({', '.join(METHODS)})")
    return adapter, time.perf_counter() - start
