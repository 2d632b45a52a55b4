"""What a component converter hands to a backend: one or more methods, each an nn.Module with static input and
output specs (names, shapes, dtypes) and example inputs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

DTYPES = {"float32": torch.float32, "float16": torch.float16, "int64": torch.int64, "int32": torch.int32}


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]


@dataclass
class Method:
    name: str
    module: nn.Module
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    example: tuple[torch.Tensor, ...]  # also the calibration sample for static quantization

    def io_json(self) -> dict[str, Any]:
        return {"inputs": [t.to_json() for t in self.inputs], "outputs": [t.to_json() for t in self.outputs]}


@dataclass
class Component:
    name: str  # unet | text_encoder | text_encoder_2 | vae_decoder | hypernet
    methods: list[Method]
    forms: list[str]  # graph_forms applied before lowering
    info: dict[str, Any] = field(default_factory=dict)  # component-specific manifest fields
    # Extra example batches for calibration (static quantization); each a tuple like Method.example.
    calibration: dict[str, list[tuple[torch.Tensor, ...]]] = field(default_factory=dict)

    @property
    def param_count(self) -> int:
        seen: set[int] = set()
        total = 0
        for m in self.methods:
            for p in m.module.parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    total += p.numel()
        return total


def random_inputs(specs: list[TensorSpec], seed: int = 0, high: int = 1000) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for s in specs:
        if s.dtype.startswith("int"):
            out.append(torch.randint(0, high, s.shape, generator=g, dtype=s.torch_dtype))
        else:
            out.append(torch.randn(s.shape, generator=g, dtype=torch.float32).to(s.torch_dtype))
    return tuple(out)
