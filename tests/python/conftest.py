"""Shared fixtures: a tiny SDXL-layout UNet saved in diffusers format, and LoRA files for it in every format."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

from pathlib import Path

import pytest
import torch

from lora_factory import LoraSpec, make_unet, write_lora

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def unet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("unet")
    make_unet().save_pretrained(path, safe_serialization=True)
    return path


@pytest.fixture(scope="session")
def lora_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("loras")


@pytest.fixture(scope="session")
def lora_files(unet_dir: Path, lora_dir: Path) -> dict[str, Path]:
    """One file (or folder) per format, all for the tiny UNet."""
    specs = {
        "peft": LoraSpec("peft", rank=4, alpha=8.0, seed=1),
        "peft-fp16": LoraSpec("peft", rank=4, alpha=2.0, seed=2, dtype=torch.float16),
        "peft-bf16": LoraSpec("peft", rank=4, alpha=4.0, seed=3, dtype=torch.bfloat16),
        "legacy": LoraSpec("legacy", rank=3, alpha=3.0, seed=4),
        "legacy-unet-unet": LoraSpec("legacy-unet-unet", rank=3, alpha=3.0, seed=4),
        "kohya-sd1": LoraSpec("kohya-sd1", rank=4, alpha=1.0, seed=5, dtype=torch.float16),
        "kohya-sdxl": LoraSpec("kohya-sdxl", rank=2, alpha=1.5, seed=6),
        "peft-folder": LoraSpec("peft-folder", rank=4, alpha=6.0, seed=7),
        "content": LoraSpec("peft", rank=4, alpha=4.0, seed=10),
        "style": LoraSpec("peft", rank=8, alpha=8.0, seed=11, modules=("to_q", "to_k", "to_v", "to_out.0")),
    }
    return {name: write_lora(spec, lora_dir / name) for name, spec in specs.items()}
