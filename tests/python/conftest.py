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


# ---------------------------------------------------------------- export (tests/python/test_export_*.py)
@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A diffusers SD pipeline folder with random weights, the world's layout at a smaller width."""
    from lorarar.export.bundle import random_source

    return random_source(tmp_path_factory.mktemp("export") / "pipeline", "tiny")


@pytest.fixture(scope="session")
def tiny_hypernet(tmp_path_factory: pytest.TempPathFactory, tiny_pipeline: Path) -> Path:
    """A randomly initialised HyperNet for the tiny UNet's merged widths, saved in HyperNet.save format."""
    from diffusers import UNet2DConditionModel

    from lorarar.export.hypernet import random_hypernet
    from lorarar.export.lora_slot import find_targets

    unet = UNet2DConditionModel.from_pretrained(str(tiny_pipeline / "unet"))
    widths = [n_out for module, _, n_out in find_targets(unet, ("to_q", "to_out.0"))]
    folder = tmp_path_factory.mktemp("hypernet")
    random_hypernet(widths, seed=3).save(folder)
    return folder


def _bundle(
    tmp_path_factory: pytest.TempPathFactory,
    pipeline: Path,
    hypernet: Path | None,
    backend: str,
    quant: str = "none",
    components: tuple[str, ...] | None = None,
) -> Path:
    from lorarar.export.bundle import COMPONENTS, ExportOptions, export_bundle

    out = tmp_path_factory.mktemp("bundles") / f"{backend}-{quant}"
    export_bundle(
        ExportOptions(
            model=pipeline,
            out=out,
            backend=backend,
            quant=quant,
            max_rank=8,
            hypernet=hypernet,
            components=components or COMPONENTS,
            progress=False,
        )
    )
    return out


@pytest.fixture(scope="session")
def xnnpack_bundle(tmp_path_factory: pytest.TempPathFactory, tiny_pipeline: Path, tiny_hypernet: Path) -> Path:
    return _bundle(tmp_path_factory, tiny_pipeline, tiny_hypernet, "xnnpack")


@pytest.fixture(scope="session")
def tiled_bundle(tmp_path_factory: pytest.TempPathFactory, tiny_pipeline: Path, xnnpack_bundle: Path) -> Path:
    """The xnnpack bundle with the VAE decoded in 4x4 latent tiles (of 8x8: three per axis, overlapping by 2), made
    as a user adds tiling to a bundle: ``lorarar export --components vae_decoder --vae-tile 4 --update``."""
    import shutil

    from lorarar.export.bundle import ExportOptions, export_bundle

    out = tmp_path_factory.mktemp("bundles") / "xnnpack-tiled"
    shutil.copytree(xnnpack_bundle, out)
    export_bundle(
        ExportOptions(
            model=tiny_pipeline, out=out, components=("vae_decoder",), vae_tile=4, update=True, progress=False
        )
    )
    return out


@pytest.fixture(scope="session")
def onnx_bundle(tmp_path_factory: pytest.TempPathFactory, tiny_pipeline: Path, tiny_hypernet: Path) -> Path:
    return _bundle(tmp_path_factory, tiny_pipeline, tiny_hypernet, "onnx")


@pytest.fixture(scope="session")
def export_bundle_factory(tmp_path_factory: pytest.TempPathFactory, tiny_pipeline: Path):  # type: ignore[no-untyped-def]
    made: dict[tuple[str, str, tuple[str, ...] | None], Path] = {}  # an export takes minutes: one per session

    def make(backend: str, quant: str = "none", components: tuple[str, ...] | None = None) -> Path:
        key = (backend, quant, components)
        if key not in made:
            made[key] = _bundle(tmp_path_factory, tiny_pipeline, None, backend, quant, components)
        return made[key]

    return make


@pytest.fixture(scope="session")
def pair(tiny_pipeline: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A content LoRA (rank 4) and a style LoRA (rank 4) for the tiny pipeline's UNet, peft format, random factors:
    the pair the engine tests merge (the slot's max rank is 8)."""
    from diffusers import UNet2DConditionModel

    from export_helpers import write_lora

    unet = UNet2DConditionModel.from_pretrained(str(tiny_pipeline / "unet"))
    folder = tmp_path_factory.mktemp("engine-loras")
    return (
        write_lora(unet, folder / "content.safetensors", rank=4, alpha=4.0, seed=21),
        write_lora(unet, folder / "style.safetensors", rank=4, alpha=2.0, seed=22),
    )
