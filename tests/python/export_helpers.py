"""Shared pieces of the export tests: a tiny random SD pipeline, LoRA files for its UNet, the eager oracle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from lorarar.export.lora_slot import ATTENTION_LEAVES, find_targets


def write_lora(
    unet: torch.nn.Module, path: Path, rank: int, alpha: float, seed: int, leaves: tuple[str, ...] = ATTENTION_LEAVES
) -> Path:
    """A diffusers/peft-format LoRA (``unet.<module>.lora_A/B.weight``, alpha in the adapter metadata)."""
    g = torch.Generator().manual_seed(seed)
    tensors = {}
    for module, n_in, n_out in find_targets(unet, leaves):
        tensors[f"unet.{module}.lora_A.weight"] = torch.randn(rank, n_in, generator=g) * 0.3
        tensors[f"unet.{module}.lora_B.weight"] = torch.randn(n_out, rank, generator=g) * 0.3
    meta = {
        "r": rank,
        "lora_alpha": alpha,
        "target_modules": sorted({m.split(".")[-1] for m in leaves}),
        "peft_type": "LORA",
    }
    save_file(tensors, str(path), metadata={"format": "pt", "lora_adapter_metadata": json.dumps({"unet": meta})})
    return path


def read_lora(path: Path, alpha: float, rank: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """module -> (scale * A, B), read with safetensors alone (independent of the native engine)."""
    t = load_file(str(path))
    out = {}
    for key in t:
        if key.endswith(".lora_A.weight"):
            module = key[len("unet.") : -len(".lora_A.weight")]
            out[module] = (t[key] * (alpha / rank), t[f"unet.{module}.lora_B.weight"])
    return out


def fuse(unet: torch.nn.Module, deltas: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for module, delta in deltas.items():
            unet.get_submodule(module).weight += delta.to(torch.float32)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two 8-bit-range images, in dB."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def rel_err(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    a64 = torch.as_tensor(np.asarray(a), dtype=torch.float64)
    b64 = torch.as_tensor(np.asarray(b), dtype=torch.float64)
    return float((a64 - b64).norm() / b64.norm().clamp_min(1e-30))
