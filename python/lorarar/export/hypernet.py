"""The LoRA.rar hypernetwork converter: one method per (out, in) shape of the merged layers and rank.

Method ``coefficients_{out}x{in}`` takes the factors of all L merged layers of that shape, in slot order, each
zero-padded to the slot's max rank R, with the LoRA scales folded into the downs (as
``HyperNet.forward_lowrank``): ``down_c`` (L, R, in), ``up_c`` (L, out, R), ``down_s`` (L, R, in),
``up_s`` (L, out, R). It returns ``coefficients`` (L, 2, in): row 0 the content column coefficients m_c, row 1 the
style ones m_s, which the runtime folds (``Adapter.merge(..., "columns", coefficients=...)``). Layers that are not
merged (to_k, to_v by default) are summed with coefficient 1 and never reach the hypernetwork.

The work is linear in the padded rank, and LoRAs are often of a much lower rank than the slot (the default world's
are 8, its slot 32), so each shape is also exported at the smaller ranks of ``rank_ladder(R)``, as
``coefficients_{out}x{in}_r{rank}``: the runtime runs the smallest that fits the pair (same coefficients: the
padding is zeros).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from lorarar.errors import LoraError
from lorarar.export.errors import ExportError
from lorarar.export.lora_slot import SlotLayout
from lorarar.export.program import Component, Method, TensorSpec, random_inputs
from lorarar.hypernet.model import HyperNet, HyperNetConfig


class HyperNetMethod(nn.Module):
    """All layers of one shape at once: h = [P B_c | Q B_s] [A_c ; A_s] + b1, y = W2 relu(h) + b2."""

    def __init__(self, net: HyperNet, n: int) -> None:
        super().__init__()
        first: Any = net.inputs[str(n)]
        hidden = int(first.weight.shape[0])
        self.p = nn.Linear(n, hidden, bias=False)
        self.q = nn.Linear(n, hidden, bias=False)
        with torch.no_grad():
            self.p.weight.copy_(first.weight[:, :n])
            self.q.weight.copy_(first.weight[:, n:])
        self.b1 = nn.Parameter(first.bias.detach().clone().reshape(1, hidden, 1), requires_grad=False)
        self.output = net.output

    def forward(
        self, down_c: torch.Tensor, up_c: torch.Tensor, down_s: torch.Tensor, up_s: torch.Tensor
    ) -> torch.Tensor:
        pc = self.p(up_c.transpose(1, 2))  # (L, R, hidden) = (P B_c)^T
        qs = self.q(up_s.transpose(1, 2))
        h = torch.bmm(torch.cat([pc, qs], dim=1).transpose(1, 2), torch.cat([down_c, down_s], dim=1)) + self.b1
        return self.output(torch.relu(h).transpose(1, 2)).transpose(1, 2)  # (L, 2, in)


def random_hypernet(widths: list[int], seed: int = 0) -> HyperNet:
    torch.manual_seed(seed)
    return HyperNet(HyperNetConfig(widths=tuple(sorted(set(widths))))).eval()


def load(folder: Path) -> HyperNet:
    """A HyperNet.save folder; HyperNet.load's errors name the file at fault."""
    try:
        return HyperNet.load(folder).eval()
    except LoraError as e:
        raise ExportError(str(e)) from None


def merged_groups(net_config: HyperNetConfig, layout: SlotLayout) -> dict[tuple[int, int], list[int]]:
    """(out, in) -> slot indices of the merged layers of that shape."""
    groups: dict[tuple[int, int], list[int]] = {}
    for layer in layout.layers:
        if net_config.is_merged(layer.module):
            groups.setdefault((layer.out_features, layer.in_features), []).append(layer.index)
    return groups


def method_name(out: int, n_in: int, rank: int | None = None) -> str:
    """The max-rank method keeps the plain name (bundles before the rank ladder had only that one)."""
    return f"coefficients_{out}x{n_in}" + (f"_r{rank}" if rank is not None else "")


def rank_ladder(max_rank: int) -> list[int]:
    """The ranks each shape is exported at: powers of two from 4 below the slot's max rank, then the max rank."""
    return [r for r in (4, 8, 16, 32, 64, 128, 256, 512) if r < max_rank] + [max_rank]


def convert(net: HyperNet, layout: SlotLayout, source: str) -> Component:
    net = net.eval().requires_grad_(False)
    groups = merged_groups(net.config, layout)
    if not groups:
        raise ExportError(f"{source}: no UNet layer matches the hypernetwork's merged layers {net.config.merged}")
    missing = sorted({out for out, _ in groups} - set(net.config.widths))
    if missing:
        raise ExportError(
            f"{source}: the hypernetwork has no input layer for width(s) {missing} of this UNet's merged layers "
            f"(it serves {list(net.config.widths)})"
        )
    max_rank = layout.max_rank
    methods = []
    info_methods: dict[str, Any] = {}
    for (out, n_in), indices in sorted(groups.items()):
        n_layers = len(indices)
        module = HyperNetMethod(net, out).eval()  # the same weights at every rank
        for r in rank_ladder(max_rank):
            inputs = [
                TensorSpec("down_c", (n_layers, r, n_in)),
                TensorSpec("up_c", (n_layers, out, r)),
                TensorSpec("down_s", (n_layers, r, n_in)),
                TensorSpec("up_s", (n_layers, out, r)),
            ]
            outputs = [TensorSpec("coefficients", (n_layers, 2, n_in))]
            example = tuple(t * 0.1 for t in random_inputs(inputs, seed=out))
            name = method_name(out, n_in, None if r == max_rank else r)
            methods.append(Method(name, module, inputs, outputs, example))
            info_methods[name] = {
                "out_features": out,
                "in_features": n_in,
                "rank": r,
                "layers": [layout.layers[i].module for i in indices],
                "slot_indices": indices,
            }
    info = {
        "source": source,
        "config": {"widths": list(net.config.widths), "hidden": net.config.hidden, "merged": list(net.config.merged)},
        "methods": info_methods,
        "rank": max_rank,
        "coefficient_rows": ["content", "style"],
        "params": sum(p.numel() for p in net.parameters()),
    }
    return Component("hypernet", methods, [], info)


def pack_inputs(
    method: dict[str, Any], rank: int, content: Any, style: Any, content_scale: float = 1.0, style_scale: float = 1.0
) -> tuple[torch.Tensor, ...]:
    """What the runtime feeds one method: the factors of its layers from two ``lorarar.LoraFile``s, scales folded
    into the downs, zero-padded to ``rank`` (the method's). A layer missing from a LoRA gets zeros (its coefficients
    are unused)."""
    n_layers, n_in, out = len(method["layers"]), method["in_features"], method["out_features"]
    tensors = []
    for lora, user_scale in ((content, content_scale), (style, style_scale)):
        infos = {layer.name: layer for layer in lora.layers}
        down = torch.zeros(n_layers, rank, n_in)
        up = torch.zeros(n_layers, out, rank)
        for i, module in enumerate(method["layers"]):
            info = infos.get(module)
            if info is None:
                continue
            if info.rank > rank:
                raise ExportError(f"{lora.path}: layer {module}: rank {info.rank} exceeds the method's rank {rank}")
            a, b = lora.factors(module)
            down[i, : info.rank] = torch.from_numpy(a) * (info.scale * user_scale)
            up[i, :, : info.rank] = torch.from_numpy(b)
        tensors += [down, up]
    return tuple(tensors)
