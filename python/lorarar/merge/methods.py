"""One API for every merge method: ``merge(content, style, method=...) -> (Adapter, seconds)``.

- direct: content_scale * content + style_scale * style (the sum by default).
- columns: per-column coefficients read from a file.
- hypernet: LoRA.rar's hypernetwork predicts the coefficients of the merged layers in one pass (low-rank form);
  the other layers are summed.
- ziplora: ZipLoRA's per-pair optimisation of the coefficients (100 Adam steps, lr 0.01, lambda 0.01) against
  the LoRAs' own training images; needs those images, so it is available for the default world's library.
- peft-cat, peft-ties, peft-dare: peft's ``add_weighted_adapter`` (extra baselines, see ``peft_merge``).

A method spec may carry the two scalar weights users pick, ``NAME@WC:WS`` (e.g. ``direct@1:0.7``).

Every method ends in the native fold (``Adapter.merge``); the timing covers computing the coefficients and the fold.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lorarar._native import Adapter, LoraFile
from lorarar.errors import LoraError
from lorarar.hypernet.model import HyperNet
from lorarar.merge.peft_merge import PEFT_METHODS, peft_merge

METHODS = ("direct", "columns", "hypernet", "ziplora", *PEFT_METHODS)
Coefficients = dict[str, tuple[np.ndarray, np.ndarray]]


def parse_method(spec: str) -> tuple[str, float, float]:
    """``NAME`` or ``NAME@WC:WS`` -> (name, content scale, style scale)."""
    name, _, weights = spec.partition("@")
    if name not in METHODS:
        raise LoraError(f"unknown merge method {name!r} ({', '.join(METHODS)})")
    if not weights:
        return name, 1.0, 1.0
    try:
        wc, ws = (float(w) for w in weights.split(":"))
    except ValueError:
        raise LoraError(f"{spec!r}: the weights are written NAME@WC:WS, two numbers (e.g. direct@1:0.7)") from None
    if not all(np.isfinite([wc, ws])):
        raise LoraError(f"{spec!r}: the weights must be finite numbers")
    return name, wc, ws


def load_hypernet(path: Path) -> HyperNet:
    """A trained hypernetwork folder (config.json + hypernet.safetensors) or the published SDXL file."""
    return HyperNet.load(path) if path.is_dir() else HyperNet.from_published(path)


@torch.no_grad()
def hypernet_coefficients(hypernet: HyperNet, content: LoraFile, style: LoraFile) -> Coefficients:
    """(m_c, m_s) of every merged layer. Layers of one (out, in) shape go through the hypernetwork together, packed
    as the exported program's inputs are (ranks zero-padded to the largest: the same values)."""
    from lorarar.export.hypernet import pack_inputs

    style_layers = {layer.name: layer for layer in style.layers}
    widths = set(hypernet.config.widths)
    groups: dict[tuple[int, int], list[Any]] = {}
    for layer in sorted(content.layers, key=lambda layer: layer.name):
        if layer.name not in style_layers or not hypernet.config.is_merged(layer.name):
            continue
        if layer.out_features not in widths:
            raise LoraError(
                f"{content.path}: layer {layer.name!r} has {layer.out_features} output features; the hypernetwork "
                f"serves {sorted(widths)}",
                3,
            )
        groups.setdefault((layer.out_features, layer.in_features), []).append(layer)
    out: Coefficients = {}
    for (n_out, n_in), layers in groups.items():
        rank = max(max(layer.rank, style_layers[layer.name].rank) for layer in layers)
        method = {"layers": [layer.name for layer in layers], "in_features": n_in, "out_features": n_out}
        m = hypernet.forward_lowrank(*pack_inputs(method, rank, content, style)).numpy()  # (L, 2, in)
        for i, layer in enumerate(layers):
            out[layer.name] = (m[i, 0], m[i, 1])
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
    elif method in PEFT_METHODS:
        adapter = peft_merge(content, style, method, content_scale, style_scale)
    else:
        raise LoraError(f"unknown merge method {method!r} ({', '.join(METHODS)})")
    return adapter, time.perf_counter() - start
