"""Builds the tiny UNet and LoRA files in each format people have, written by the tools that write them
(diffusers, peft) or, for kohya, by the key scheme kohya's trainer uses."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from diffusers import UNet2DConditionModel
from safetensors.torch import save_file

ATTENTION = ("to_q", "to_k", "to_v", "to_out.0")


def make_unet() -> UNet2DConditionModel:
    """SDXL's block layout (DownBlock first, two layers per block, 2 transformer layers deep) at toy width."""
    torch.manual_seed(0)
    return UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        layers_per_block=2,
        block_out_channels=(8, 16, 16),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=12,
        attention_head_dim=4,
        norm_num_groups=4,
        transformer_layers_per_block=(1, 1, 2),
    )


def target_modules(unet: torch.nn.Module, leaves: tuple[str, ...] = ATTENTION) -> list[str]:
    return sorted(
        name
        for name, module in unet.named_modules()
        if isinstance(module, torch.nn.Linear) and any(name.endswith("." + leaf) for leaf in leaves)
    )


@dataclass(frozen=True)
class LoraSpec:
    format: str  # peft | legacy | legacy-unet-unet | kohya-sd1 | kohya-sdxl | peft-folder
    rank: int
    alpha: float
    seed: int
    dtype: torch.dtype = torch.float32
    modules: tuple[str, ...] = field(default=("to_q", "to_out.0"))


def random_factors(spec: LoraSpec, unet: torch.nn.Module) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(spec.seed)
    out = {}
    for name in target_modules(unet, spec.modules):
        m = unet.get_submodule(name)
        assert isinstance(m, torch.nn.Linear)
        down = torch.randn(spec.rank, m.in_features, generator=g) * 0.2
        up = torch.randn(m.out_features, spec.rank, generator=g) * 0.2
        out[name] = (down.to(spec.dtype), up.to(spec.dtype))
    return out


def ldm_name(module: str, layers_per_block: int = 2) -> str:
    """kohya's SDXL naming: diffusers block indices back to the original input/middle/output blocks."""
    parts = module.split(".")
    rest = "_".join(parts[4:])
    if parts[0] == "down_blocks":
        return f"input_blocks_{1 + int(parts[1]) * (layers_per_block + 1) + int(parts[3])}_1_{rest}"
    if parts[0] == "up_blocks":
        return f"output_blocks_{int(parts[1]) * (layers_per_block + 1) + int(parts[3])}_1_{rest}"
    assert parts[0] == "mid_block"
    return "middle_block_1_" + "_".join(parts[3:])


def write_lora(spec: LoraSpec, path: Path) -> Path:
    unet = make_unet()
    factors = random_factors(spec, unet)
    if spec.format in ("peft", "peft-folder"):
        return _write_peft(spec, unet, factors, path)
    tensors: dict[str, torch.Tensor] = {}
    for name, (down, up) in factors.items():
        if spec.format in ("legacy", "legacy-unet-unet"):
            prefix = "unet.unet." if spec.format == "legacy-unet-unet" else "unet."
            tensors[f"{prefix}{name}.lora.down.weight"] = down
            tensors[f"{prefix}{name}.lora.up.weight"] = up
        else:
            key = "lora_unet_" + (name.replace(".", "_") if spec.format == "kohya-sd1" else ldm_name(name))
            tensors[f"{key}.lora_down.weight"] = down
            tensors[f"{key}.lora_up.weight"] = up
            tensors[f"{key}.alpha"] = torch.tensor(spec.alpha)
    if spec.format.startswith("kohya"):
        # kohya files carry text-encoder layers too; the engine reports them.
        tensors["lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight"] = torch.zeros(spec.rank, 12)
        tensors["lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight"] = torch.zeros(12, spec.rank)
    file = path.with_suffix(".safetensors")
    save_file(tensors, str(file))
    return file


def _write_peft(
    spec: LoraSpec, unet: UNet2DConditionModel, factors: dict[str, tuple[torch.Tensor, torch.Tensor]], path: Path
) -> Path:
    from diffusers.loaders import StableDiffusionLoraLoaderMixin
    from peft import LoraConfig, get_peft_model
    from peft.utils import get_peft_model_state_dict

    config = LoraConfig(r=spec.rank, lora_alpha=spec.alpha, target_modules=list(spec.modules), init_lora_weights=False)
    if spec.format == "peft-folder":
        model = get_peft_model(unet, config)
        _set_factors(model, factors, "base_model.model.")
        model.save_pretrained(str(path))
        return path
    unet.add_adapter(config)
    _set_factors(unet, factors, "")
    state = {k: v.to(spec.dtype) for k, v in get_peft_model_state_dict(unet).items()}
    metadata = {k: v for k, v in config.to_dict().items() if not callable(v)}
    metadata["target_modules"] = sorted(metadata["target_modules"])
    metadata["peft_type"] = "LORA"
    StableDiffusionLoraLoaderMixin.save_lora_weights(
        str(path), unet_lora_layers=state, unet_lora_adapter_metadata=json.loads(json.dumps(metadata, default=str))
    )
    return path / "pytorch_lora_weights.safetensors"


def _set_factors(model: torch.nn.Module, factors: dict[str, tuple[torch.Tensor, torch.Tensor]], prefix: str) -> None:
    with torch.no_grad():
        for name, (down, up) in factors.items():
            layer = model.get_submodule(prefix + name)
            layer.lora_A["default"].weight.copy_(down.float())  # type: ignore[index,union-attr]
            layer.lora_B["default"].weight.copy_(up.float())  # type: ignore[index,union-attr]


def module_of(key: str) -> str:
    return re.sub(r"\.weight$", "", key)
