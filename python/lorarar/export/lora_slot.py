"""The UNet's LoRA slot: a low-rank branch of max rank R on every target layer, fed at run time.

Every target Linear ``y = W x + b`` becomes ``y = W x + b + B'(A' x)`` where, per layer, ``A'`` is (R, in) and
``B'`` is (out, R). All A' are packed into one flat float32 input (``lora_a``) and all B' into another
(``lora_b``), row-major, layer after layer in the slot order; the graph slices them. The runtime fills the two
buffers from a folded adapter (``A' = [s_c A_c diag(m_c); s_s A_s diag(m_s)]``, ``B' = [B_c, B_s]``): a merge of
rank r <= R goes in the first r rows of A' and the first r columns of B', the rest stays zero; all-zero buffers
give the base model. A rank above R is refused when packing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lorarar.export.errors import ExportError

ATTENTION_LEAVES = ("to_q", "to_k", "to_v", "to_out.0")
A_INPUT, B_INPUT = "lora_a", "lora_b"


@dataclass(frozen=True)
class SlotLayer:
    module: str
    in_features: int
    out_features: int
    rank: int  # the slot's max rank for this layer
    index: int
    a_offset: int  # element offset of this layer's (rank, in) block in lora_a
    b_offset: int  # element offset of this layer's (out, rank) block in lora_b

    @property
    def a_size(self) -> int:
        return self.rank * self.in_features

    @property
    def b_size(self) -> int:
        return self.out_features * self.rank


@dataclass(frozen=True)
class SlotLayout:
    max_rank: int
    layers: tuple[SlotLayer, ...]

    @property
    def a_size(self) -> int:
        return sum(layer.a_size for layer in self.layers)

    @property
    def b_size(self) -> int:
        return sum(layer.b_size for layer in self.layers)

    def find(self, module: str) -> SlotLayer | None:
        return self._index().get(module)

    def _index(self) -> dict[str, SlotLayer]:
        return {layer.module: layer for layer in self.layers}

    @classmethod
    def build(cls, targets: Iterable[tuple[str, int, int]], max_rank: int) -> SlotLayout:
        """targets: (module, in, out), any order; the slot order is sorted by module name."""
        if max_rank < 1:
            raise ExportError(f"--max-rank: must be >= 1, got {max_rank}")
        layers = []
        a = b = 0
        for i, (module, n_in, n_out) in enumerate(sorted(targets)):
            layer = SlotLayer(module, n_in, n_out, max_rank, i, a, b)
            layers.append(layer)
            a += layer.a_size
            b += layer.b_size
        return cls(max_rank, tuple(layers))

    def to_json(self) -> dict[str, Any]:
        return {
            "max_rank": self.max_rank,
            "inputs": {A_INPUT: self.a_size, B_INPUT: self.b_size},
            "layout": "lora_a: per layer A' (rank, in) row-major; lora_b: per layer B' (out, rank) row-major",
            "layers": [asdict(layer) for layer in self.layers],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SlotLayout:
        return cls(int(data["max_rank"]), tuple(SlotLayer(**layer) for layer in data["layers"]))

    # ------------------------------------------------------------ packing (what the runtime does)
    def pack(
        self, factors: Mapping[str, tuple[np.ndarray, np.ndarray]], source: str = "adapter"
    ) -> tuple[np.ndarray, np.ndarray]:
        """(A', B') per module -> the two flat inputs. Rank above the slot's is an error; below is zero-padded."""
        a = np.zeros(self.a_size, np.float32)
        b = np.zeros(self.b_size, np.float32)
        index = self._index()
        for module, (down, up) in sorted(factors.items()):
            layer = index.get(module)
            if layer is None:
                raise ExportError(f"{source}: layer {module} is not a LoRA slot of this bundle")
            r = down.shape[0]
            if down.shape != (r, layer.in_features) or up.shape != (layer.out_features, r):
                raise ExportError(
                    f"{source}: layer {module}: factors {tuple(down.shape)} / {tuple(up.shape)} do not fit "
                    f"({layer.out_features}, {layer.in_features})"
                )
            if r > layer.rank:
                raise ExportError(
                    f"{source}: layer {module}: adapter rank {r} exceeds the slot's max rank {layer.rank} "
                    f"(export with --max-rank {r} or more)"
                )
            a[layer.a_offset : layer.a_offset + r * layer.in_features] = np.asarray(down, np.float32).reshape(-1)
            bview = b[layer.b_offset : layer.b_offset + layer.b_size].reshape(layer.out_features, layer.rank)
            bview[:, :r] = up
        return a, b

    def pack_adapter(self, adapter: Any, source: str = "adapter") -> tuple[np.ndarray, np.ndarray]:
        """A native ``lorarar.Adapter`` (single LoRA or folded merge) -> the two flat inputs."""
        factors = {module: adapter.materialize(module) for module, *_ in adapter.layers}
        return self.pack(factors, source)


def find_targets(model: nn.Module, leaves: Sequence[str] = ATTENTION_LEAVES) -> list[tuple[str, int, int]]:
    """(module, in, out) of every Linear whose name ends with one of the leaves (the attention projections)."""
    out = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and any(name == leaf or name.endswith("." + leaf) for leaf in leaves):
            out.append((name, module.in_features, module.out_features))
    return sorted(out)


class _Feed:
    """The flat inputs of the forward being traced; plain attributes, not registered tensors."""

    a: torch.Tensor | None = None
    b: torch.Tensor | None = None


class SlotLinear(nn.Module):
    """``base(x) + B'(A' x)`` with A', B' sliced from the flat inputs."""

    def __init__(self, base: nn.Linear, layer: SlotLayer, feed: _Feed) -> None:
        super().__init__()
        self.base = base
        self.layer = layer
        self._feed = feed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layer, feed = self.layer, self._feed
        assert feed.a is not None and feed.b is not None, "SlotLinear called outside LoraSlot.feed()"
        a = feed.a[layer.a_offset : layer.a_offset + layer.a_size].view(layer.rank, layer.in_features)
        b = feed.b[layer.b_offset : layer.b_offset + layer.b_size].view(layer.out_features, layer.rank)
        return self.base(x) + F.linear(F.linear(x, a), b)


class LoraSlot:
    """Installs SlotLinear on every layer of a layout, in place, and feeds the flat inputs during a forward."""

    def __init__(self, model: nn.Module, layout: SlotLayout) -> None:
        self.layout = layout
        self._feed = _Feed()
        for layer in layout.layers:
            parent_name, _, leaf = layer.module.rpartition(".")
            parent = model.get_submodule(parent_name)
            base = parent.get_submodule(leaf)
            if not isinstance(base, nn.Linear):
                raise ExportError(f"{layer.module}: not a Linear layer")
            setattr(parent, leaf, SlotLinear(base, layer, self._feed))

    def set(self, a: torch.Tensor | None, b: torch.Tensor | None) -> None:
        self._feed.a, self._feed.b = a, b


def fuse_into(model: nn.Module, factors: Mapping[str, tuple[np.ndarray, np.ndarray]], scale: float = 1.0) -> None:
    """W += scale * B' A' for each module (the eager reference of the slot)."""
    with torch.no_grad():
        for module, (down, up) in factors.items():
            linear = model.get_submodule(module)
            assert isinstance(linear, nn.Linear)
            delta = torch.from_numpy(np.asarray(up, np.float64)) @ torch.from_numpy(np.asarray(down, np.float64))
            linear.weight += (scale * delta).to(linear.weight.dtype)
