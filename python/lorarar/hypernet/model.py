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

import torch
from torch import nn

HIDDEN = 128


@dataclass(frozen=True)
class HyperNetConfig:
    widths: tuple[int, ...]  # out_features of the merged layers
    hidden: int = HIDDEN
    merged: tuple[str, ...] = field(default=("to_q", "to_out.0"))  # leaf names merged column-wise; others summed

    def is_merged(self, module: str) -> bool:
        return any(module == leaf or module.endswith("." + leaf) for leaf in self.merged)


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
        from safetensors.torch import load_file

        cfg = json.loads((folder / "config.json").read_text())
        model = cls(HyperNetConfig(widths=tuple(cfg["widths"]), hidden=cfg["hidden"], merged=tuple(cfg["merged"])))
        model.load_state_dict(load_file(str(folder / "hypernet.safetensors")))
        return model

    @classmethod
    def from_published(cls, path: Path) -> HyperNet:
        """Imports the SDXL hypernetwork published with LoRA.rar (input_1: width 640, input_2: 1280, output.1)."""
        from safetensors.torch import load_file

        state = load_file(str(path))
        widths = {
            int(state[k].shape[1]) // 2: k.split(".")[0]
            for k in state
            if k.startswith("input_") and k.endswith(".weight")
        }
        model = cls(HyperNetConfig(widths=tuple(sorted(widths)), hidden=int(state["output.1.weight"].shape[1])))
        mapped = {f"inputs.{n}.{p}": state[f"{name}.{p}"] for n, name in widths.items() for p in ("weight", "bias")}
        mapped.update({f"output.{p}": state[f"output.1.{p}"] for p in ("weight", "bias")})
        model.load_state_dict(mapped)
        return model
