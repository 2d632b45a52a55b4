"""The LoRA.rar hypernetwork, as in the paper's published code, with its low-rank evaluation.

One network is shared by every merged layer and every column. For column j of a layer with out_features n:

    x_j = [dW_c[:, j] ; dW_s[:, j]]                       (length 2n; dW = scale * B A)
    (m_c, m_s)_j = W2 relu(W1_n x_j + b1_n) + b2            (W1_n: one first Linear per output width n)

Evaluating it never needs dW: with W1_n = [P, Q] split by halves,

    W1_n x_j = s_c (P B_c) A_c[:, j] + s_s (Q B_s) A_s[:, j]

so a whole layer costs O(hidden * r * (in + out)) instead of O(hidden * in * out).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lorarar.errors import LoraError

HIDDEN = 128


@dataclass(frozen=True)
class HyperNetConfig:
    widths: tuple[int, ...]  # out_features of the merged layers
    hidden: int = HIDDEN
    merged: tuple[str, ...] = field(default=("to_q", "to_out.0"))  # leaf names merged column-wise; others summed

    def is_merged(self, module: str) -> bool:
        return any(module == leaf or module.endswith("." + leaf) for leaf in self.merged)


def read_config(path: Path) -> HyperNetConfig:
    """A hypernetwork's config.json: positive widths and hidden size, merged leaf names."""
    if not path.is_file():
        raise LoraError(f"{path}: no such file (not a hypernetwork folder)", 4)
    try:
        cfg = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise LoraError(f"{path}: not JSON ({e})", 2) from None
    if not isinstance(cfg, dict):
        raise LoraError(f"{path}: expected a JSON object with widths, hidden and merged", 2)

    def field_of(key: str, check: Any, meaning: str) -> Any:
        if key not in cfg:
            raise LoraError(f"{path}: no {key!r} ({meaning})", 2)
        if not check(cfg[key]):
            raise LoraError(f"{path}: {key!r} must be {meaning}, got {cfg[key]!r}", 2)
        return cfg[key]

    def positive(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 1 << 20

    widths = field_of(
        "widths", lambda v: isinstance(v, list) and v and all(positive(w) for w in v), "a list of positive integers"
    )
    hidden = field_of("hidden", positive, "a positive integer")
    merged = field_of(
        "merged", lambda v: isinstance(v, list) and all(isinstance(m, str) and m for m in v), "a list of layer names"
    )
    return HyperNetConfig(widths=tuple(widths), hidden=hidden, merged=tuple(merged))


class HyperNet(nn.Module):
    def __init__(self, config: HyperNetConfig) -> None:
        super().__init__()
        self.config = config
        self.inputs = nn.ModuleDict({str(n): nn.Linear(2 * n, config.hidden) for n in config.widths})
        self.output = nn.Linear(config.hidden, 2)

    def forward_columns(self, x: torch.Tensor) -> torch.Tensor:
        """The published form: x (columns, 2n) -> (columns, 2). Materialises dW; the reference for tests."""
        n = x.shape[1] // 2
        return self.output(torch.relu(self.inputs[str(n)](x)))

    def forward_lowrank(
        self, down_c: torch.Tensor, up_c: torch.Tensor, down_s: torch.Tensor, up_s: torch.Tensor
    ) -> torch.Tensor:
        """Coefficients (2, in) of one layer from its factors, scales already folded into the downs.

        down_*: (r, in), up_*: (out, r). Zero-padded ranks give the same result. A leading batch dimension
        (L layers of one shape) gives (L, 2, in) in one call.
        """
        n = up_c.shape[-2]
        first = self.inputs[str(n)]
        assert isinstance(first, nn.Linear)
        p, q = first.weight[:, :n], first.weight[:, n:]
        h = (p @ up_c) @ down_c + (q @ up_s) @ down_s + first.bias[:, None]  # (hidden, in)
        return (self.output.weight @ torch.relu(h)) + self.output.bias[:, None]  # (2, in)

    def save(self, folder: Path) -> None:
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(folder / "hypernet.safetensors"))
        (folder / "config.json").write_text(json.dumps(asdict(self.config), indent=2))

    @classmethod
    def load(cls, folder: Path) -> HyperNet:
        """A folder written by save(). A missing, malformed or mismatched file raises LoraError naming it."""
        model = cls(read_config(folder / "config.json"))
        weights = folder / "hypernet.safetensors"
        if not weights.is_file():
            raise LoraError(f"{weights}: no such file (a hypernetwork folder holds config.json + this file)", 4)
        model._load_checked(_read_weights(weights), weights, "its config.json")
        return model

    @classmethod
    def from_published(cls, path: Path) -> HyperNet:
        """Imports the SDXL hypernetwork published with LoRA.rar (input_1: width 640, input_2: 1280, output.1)."""
        state = _read_weights(path)
        inputs = {k.split(".")[0]: v for k, v in state.items() if k.startswith("input_") and k.endswith(".weight")}
        output = state.get("output.1.weight")
        if not inputs or output is None or output.dim() != 2 or any(v.dim() != 2 for v in inputs.values()):
            raise LoraError(f"{path}: not a LoRA.rar hypernetwork (expected input_N.weight and output.1.weight)", 2)
        widths = {int(v.shape[1]) // 2: name for name, v in inputs.items()}
        model = cls(HyperNetConfig(widths=tuple(sorted(widths)), hidden=int(output.shape[1])))
        renamed = {f"inputs.{n}.": f"{name}." for n, name in widths.items()} | {"output.": "output.1."}
        mapped = {}
        for key in model.state_dict():
            prefix = next(p for p in renamed if key.startswith(p))
            source = renamed[prefix] + key[len(prefix) :]
            if source in state:
                mapped[key] = state[source]
        model._load_checked(mapped, path, "the published layout")
        return model

    def _load_checked(self, state: dict[str, torch.Tensor], path: Path, against: str) -> None:
        expected = {k: tuple(v.shape) for k, v in self.state_dict().items()}
        found = {k: tuple(v.shape) for k, v in state.items()}
        if found != expected:
            missing = sorted(set(expected) - set(found))
            extra = sorted(set(found) - set(expected))
            shapes = sorted(k for k in set(found) & set(expected) if found[k] != expected[k])
            problem = "; ".join(
                f"{what}: {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''}"
                for what, keys in (("missing", missing), ("unexpected", extra), ("wrong shape", shapes))
                if keys
            )
            raise LoraError(f"{path}: does not match {against} ({problem})", 2)
        self.load_state_dict({k: v.float() for k, v in state.items()})


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file of finite weights, or LoraError naming it."""
    from safetensors.torch import load_file

    if not path.is_file():
        raise LoraError(f"{path}: no such file", 4)
    try:
        state = load_file(str(path))
    except Exception as e:  # safetensors raises its own error types for every kind of bad header
        raise LoraError(f"{path}: not a safetensors file ({e})", 2) from None
    for key in sorted(state):
        if not bool(torch.isfinite(state[key].float()).all()):
            raise LoraError(f"{path}: tensor {key!r} holds NaN or Inf", 2)
    return state
