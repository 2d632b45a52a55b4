"""Independent oracles: diffusers' (and peft's) own LoRA loading and fusing."""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import UNet2DConditionModel
from diffusers.loaders import StableDiffusionLoraLoaderMixin as Loader


def load_into(unet: UNet2DConditionModel, path: Path, adapter_name: str) -> None:
    """diffusers' load_lora_weights path for the UNet: lora_state_dict (format conversion) + load_lora_into_unet."""
    state, alphas, metadata = Loader.lora_state_dict(str(path), unet_config=unet.config, return_lora_metadata=True)
    Loader.load_lora_into_unet(state, alphas, unet, adapter_name=adapter_name, metadata=metadata)


def fused_weights(unet_dir: Path, loras: list[tuple[Path, float]]) -> dict[str, torch.Tensor]:
    """The UNet's state dict after diffusers loads the LoRAs, set_adapters(weights) and fuse_lora."""
    unet = UNet2DConditionModel.from_pretrained(str(unet_dir))
    names = []
    for i, (path, _) in enumerate(loras):
        name = f"adapter{i}"
        if path.is_dir() and (path / "adapter_config.json").exists():
            load_peft_folder(unet, path, name)
        else:
            load_into(unet, path, name)
        names.append(name)
    unet.set_adapters(names, [w for _, w in loras])
    unet.fuse_lora(adapter_names=names)
    unet.unload_lora()
    return {k: v.detach().clone() for k, v in unet.state_dict().items()}


def load_peft_folder(unet: UNet2DConditionModel, path: Path, name: str) -> None:
    """A peft save_pretrained folder, read by peft itself."""
    from peft import LoraConfig
    from peft.utils import set_peft_model_state_dict
    from safetensors.torch import load_file

    config = LoraConfig.from_pretrained(str(path))
    unet.add_adapter(config, adapter_name=name)
    state = {
        k.removeprefix("base_model.model."): v for k, v in load_file(str(path / "adapter_model.safetensors")).items()
    }
    set_peft_model_state_dict(unet, state, adapter_name=name)


def load_safetensors_dir(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path / "diffusion_pytorch_model.safetensors"))
